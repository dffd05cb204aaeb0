"""Writing one segment: packets stream-copied into a fragmented MP4 partial file.

No decoding or encoding: output streams are copies of the input streams' parameters.
Each fragment (moof+mdat) starts at a video keyframe and reaches the kernel as soon as
the muxer emits it (``flush_packets``), so a process crash loses at most the fragment
being assembled; recovery (nvr.segmenter.recovery) repairs the rest.
Every method blocks on PyAV and disk I/O; call them from the recorder's thread.
"""

import functools
import io
import logging
from fractions import Fraction
from pathlib import Path
from typing import TypeAlias

import av
import av.audio.stream
import av.error
import av.packet
import av.stream
import av.video.stream

from nvr.errors import StorageError
from nvr.ingest.events import SegmentClosed
from nvr.log import fields
from nvr.segmenter.files import make_dirs_durable, partial_path
from nvr.segmenter.finalize import (
    SegmentIdentity,
    TrackFacts,
    finalize_segment,
    log_closed,
)

log = logging.getLogger(__name__)

AnyPacket: TypeAlias = "av.packet.Packet[av.stream.Stream]"
"""A demuxed packet of any track (PyAV's Packet is generic only for type checkers)."""

# ISO/IEC 14496-15: hvc1 means parameter sets live in the sample entry, which is what
# players (Safari, QuickTime) require; FFmpeg leaves the tag unset for RTSP input.
_HEVC_TAG = "hvc1"
_MUX_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    # write each fragment to the file descriptor as soon as the muxer completes it
    "flush_packets": "1",
}


@functools.cache
def mp4_codecs() -> frozenset[str]:
    """Codec names the MP4 muxer accepts."""
    with av.open(io.BytesIO(), "w", format="mp4") as probe:
        return frozenset(probe.supported_codecs)


def audio_storable(stream: av.audio.stream.AudioStream) -> bool:
    """Whether an audio track can be stream-copied into MP4 (AAC yes, G.711 no)."""
    return stream.codec_context.name in mp4_codecs()


class SegmentWriter:
    """One partial segment file being written; ``close()`` makes it a closed segment.

    Packets come in with timestamps in their input stream's time base, counted on the
    run's clock; the file is rebased so it starts at media time 0 at its first video
    packet (a keyframe). Each packet is held back until the next one of its track arrives,
    so its duration is exact and consecutive segments of a run tile without a gap.
    """

    def __init__(
        self,
        root: Path,
        identity: SegmentIdentity,
        provisional_start_us: int,
        video: av.video.stream.VideoStream,
        audio: av.audio.stream.AudioStream | None,
    ) -> None:
        self._root = root
        self._identity = identity
        self._video_in = video
        self._audio_in = audio
        self.path = partial_path(
            root,
            identity.camera_id,
            provisional_start_us,
            identity.run_id,
            identity.seq,
        )
        try:
            make_dirs_durable(self.path.parent)
            # Our own file object, not a path: when the header write fails (disk full,
            # read-only) PyAV never closes a file it opened itself, leaking the fd and
            # the file's space; this one is always closed by close() or abandon().
            self._file = open(self.path, "wb", buffering=0)
        except OSError as exc:
            raise StorageError(f"cannot create segment {self.path}: {exc}") from exc
        try:
            self._out = av.open(self._file, "w", format="mp4", options=_MUX_OPTIONS)
            self._video_out = self._add_stream(video)
            self._audio_out = self._add_stream(audio) if audio is not None else None
        except (av.error.FFmpegError, OSError) as exc:
            self._file.close()
            raise StorageError(f"cannot open segment {self.path}: {exc}") from exc
        self._video_origin: int | None = None  # input dts that becomes media time 0
        self._audio_origin: int | None = None
        self._pending: dict[int, AnyPacket] = {}  # input stream index -> held packet
        self._last_delta: dict[int, int] = {}
        log.debug(
            "segment opened %s",
            fields(camera=identity.camera_id, segment=self.path.name),
        )

    def _add_stream(self, template: av.stream.Stream) -> av.stream.Stream:
        stream = self._out.add_stream_from_template(template)
        if template.codec_context.name == "hevc":
            stream.codec_context.codec_tag = _HEVC_TAG
        return stream

    @property
    def media_origin(self) -> int | None:
        """The input video dts at this segment's media time 0, once a packet arrived."""
        return self._video_origin

    def media_end(self) -> int | None:
        """Input video dts just past the last video packet (its duration estimated)."""
        held = self._pending.get(self._video_in.index)
        if held is None or held.dts is None:
            return None
        return held.dts + self._last_delta.get(self._video_in.index, 0)

    def write(self, packet: AnyPacket) -> None:
        """Queues one packet (dts and pts set, in its input time base)."""
        if packet.dts is None or packet.pts is None:
            raise ValueError("packet without timestamps")
        if packet.stream.index == self._video_in.index:
            if self._video_origin is None:
                self._video_origin = packet.dts
                self._audio_origin = self._audio_origin_for(packet.dts)
            self._hold(packet)
        elif self._audio_in is not None and packet.stream.index == self._audio_in.index:
            if self._audio_origin is None or packet.dts < self._audio_origin:
                return  # before the segment's first video frame
            self._hold(packet)

    def _audio_origin_for(self, video_dts: int) -> int | None:
        """The audio ticks matching a video dts.

        # Limitation: assumes both tracks share one time origin, which FFmpeg's RTSP
        # demuxer establishes from RTCP sender reports; a camera sending none can skew
        # audio against video. The fix is mapping both through RTCP NTP times.
        """
        if self._audio_in is None:
            return None
        video_base = self._video_in.time_base or Fraction(1, 90000)
        audio_base = self._audio_in.time_base or Fraction(1, 8000)
        return round(video_dts * video_base / audio_base)

    def _hold(self, packet: AnyPacket) -> None:
        index = packet.stream.index
        assert packet.dts is not None and packet.pts is not None
        previous = self._pending.get(index)
        if previous is not None:
            assert previous.dts is not None
            if packet.dts <= previous.dts:
                return  # the MP4 muxer refuses non-increasing dts (audio glitches land here)
            self._last_delta[index] = packet.dts - previous.dts
            self._mux(previous, packet.dts - previous.dts)
        self._pending[index] = packet

    def _mux(self, packet: AnyPacket, duration: int) -> None:
        assert packet.dts is not None and packet.pts is not None
        is_video = packet.stream.index == self._video_in.index
        origin = self._video_origin if is_video else self._audio_origin
        assert origin is not None
        out = self._video_out if is_video else self._audio_out
        assert out is not None
        packet.dts -= origin
        packet.pts -= origin
        packet.duration = max(1, duration)
        packet.stream = out
        try:
            self._out.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:  # OSError: from our file object
            raise StorageError(f"cannot write segment {self.path}: {exc}") from exc

    def close(self, start_us: int, end_us: int, media_end: int | None) -> SegmentClosed:
        """Finishes the file and moves it into place; returns the event to index it.

        ``media_end`` is the input dts where the next segment starts (the cut keyframe),
        or None at the end of a run. Blocking: trailer, fsync, hash, rename, dir fsync.
        """
        self._flush_held(media_end)
        try:
            self._out.close()
            self._file.close()
        except (av.error.FFmpegError, OSError) as exc:
            raise StorageError(f"cannot finish segment {self.path}: {exc}") from exc
        try:
            closed = finalize_segment(
                self._root, self.path, self._identity, self._facts(), start_us, end_us
            )
        except OSError as exc:
            raise StorageError(
                f"cannot make segment {self.path} durable: {exc}"
            ) from exc
        log_closed(closed)
        return closed

    def abandon(self) -> None:
        """Closes the muxer after a failure, leaving the partial file for recovery."""
        try:
            self._out.close()
        except (av.error.FFmpegError, OSError) as exc:
            log.warning(
                "segment abandoned %s", fields(segment=self.path.name, error=exc)
            )
        finally:
            try:
                self._file.close()
            except (
                OSError
            ) as exc:  # its buffered bytes could not be written: recovery cuts
                log.warning(
                    "segment file close failed %s",
                    fields(segment=self.path.name, error=exc),
                )

    def _flush_held(self, media_end: int | None) -> None:
        video_index = self._video_in.index
        for index, packet in sorted(self._pending.items()):
            assert packet.dts is not None
            if index == video_index and media_end is not None:
                duration = media_end - packet.dts
            else:
                duration = self._last_delta.get(index, 1)
            self._mux(packet, duration)
        self._pending.clear()

    def _facts(self) -> TrackFacts:
        context = self._video_in.codec_context
        audio = (
            self._audio_in.codec_context.name if self._audio_in is not None else None
        )
        return TrackFacts(context.name, audio, context.width, context.height)
