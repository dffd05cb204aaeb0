"""One run of one camera: demuxed packets in, closed segments out.

The run starts at the first video keyframe with a presentation time; packets before it
are dropped. Video timestamps are repaired (dts synthesis) and checked (DtsGuard); a
segment is cut at the first keyframe once ``segment_seconds`` of media time have passed.
Blocking (it writes files); it runs on the recorder's thread.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av.audio.stream
import av.packet
import av.stream
import av.video.stream

from nvr.ingest.events import SegmentClosed
from nvr.ingest.paramsets import parameter_sets
from nvr.ingest.timing import DtsGuard, DtsSynthesizer, RunClock, TimestampBreak
from nvr.log import fields
from nvr.segmenter.finalize import SegmentIdentity
from nvr.segmenter.writer import AnyPacket, SegmentWriter

log = logging.getLogger(__name__)

_DEFAULT_VIDEO_BASE = Fraction(1, 90000)
_CUT_TOLERANCE = Fraction(1, 100)  # seconds
_MIN_REORDER_DEPTH = (
    2  # H.264/H.265 cameras rarely reorder deeper; more only adds delay
)


@dataclass(frozen=True)
class RunTracks:
    """The input streams a run records (audio only if MP4 can carry it)."""

    video: av.video.stream.VideoStream
    audio: av.audio.stream.AudioStream | None


class RunSegmenter:
    """Cuts one run's packets into segments and emits SegmentClosed for each."""

    def __init__(
        self,
        root: Path,
        camera_id: str,
        run_id: str,
        segment_seconds: float,
        tracks: RunTracks,
        emit: Callable[[SegmentClosed], None],
    ) -> None:
        self._root = root
        self._camera_id = camera_id
        self._run_id = run_id
        self._tracks = tracks
        self._emit = emit
        self._time_base = tracks.video.time_base or _DEFAULT_VIDEO_BASE
        # RTP timestamps converted to the stream time base jitter by a tick or two, so a
        # keyframe a hair before the mark still counts as due
        self._segment_ticks = round(
            (Fraction(segment_seconds) - _CUT_TOLERANCE) / self._time_base
        )
        depth = max(_MIN_REORDER_DEPTH, tracks.video.codec_context.has_b_frames)
        self._synth: DtsSynthesizer[tuple[AnyPacket, int]] = DtsSynthesizer(depth)
        self._guard = DtsGuard(self._time_base)
        self.clock = RunClock(self._time_base)
        self._started = False
        self._run_origin: int | None = None  # input dts of the run's first keyframe
        self._segment_start = (
            0  # media position (ticks from run origin) of the open segment
        )
        self._writer: SegmentWriter | None = None
        self._seq = 0
        self._codec = tracks.video.codec_context.name
        self._parameter_sets = b""  # the in-band SPS/PPS the run started with
        self.last_end_us: int | None = None  # wall end of the last closed segment

    def feed(self, packet: AnyPacket, arrival_us: int) -> None:
        """Takes one demuxed packet; raises TimestampBreak when the run must end."""
        if packet.stream.index == self._tracks.video.index:
            self._feed_video(packet, arrival_us)
        elif (
            self._tracks.audio is not None
            and packet.stream.index == self._tracks.audio.index
        ):
            self._feed_audio(packet)

    def _feed_video(self, packet: AnyPacket, arrival_us: int) -> None:
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is None:
            return  # nothing places this packet in time
        if not self._started:
            if not packet.is_keyframe:
                return
            self._started = True
        for (held, held_arrival_us), dts in self._synth.push(
            (packet, arrival_us), pts, packet.dts
        ):
            self._write_video(held, dts, held_arrival_us)

    def _feed_audio(self, packet: AnyPacket) -> None:
        if self._writer is None:
            return
        if packet.dts is None:
            packet.dts = packet.pts
        if packet.dts is None or packet.pts is None:
            return
        self._writer.write(packet)

    def _write_video(self, packet: AnyPacket, dts: int, arrival_us: int) -> None:
        self._guard.check(dts)
        if packet.is_keyframe:
            self._check_parameter_sets(packet)
        if packet.pts is None:
            packet.pts = dts
        packet.dts = dts
        if self._run_origin is None:
            self._run_origin = dts
        media_position = dts - self._run_origin

        due = media_position - self._segment_start >= self._segment_ticks
        if self._writer is not None and packet.is_keyframe and due:
            if self._close_segment(media_position):
                raise TimestampBreak(
                    "clock-step", "assigned and measured wall time diverged"
                )
        self.clock.observe(arrival_us, media_position)
        if self._writer is None:
            self._open_segment(media_position)
        assert self._writer is not None
        self._writer.write(packet)

    def _check_parameter_sets(self, keyframe: AnyPacket) -> None:
        """Ends the run when a keyframe's in-band parameter sets differ from the run's.

        The MP4 sample description (and the index's width and height) would describe the
        old stream; the reconnect that follows reads the camera's new description.
        """
        found = parameter_sets(bytes(keyframe), self._codec)
        if not found:
            return  # out-of-band only (SDP), or not repeated with this keyframe
        if not self._parameter_sets:
            self._parameter_sets = found
        elif found != self._parameter_sets:
            raise TimestampBreak(
                "stream-changed",
                "new video parameter sets (resolution or encoder settings)",
            )

    def _open_segment(self, media_position: int) -> None:
        identity = SegmentIdentity(
            self._camera_id, self._run_id, self._seq, media_position, self._time_base
        )
        self._segment_start = media_position
        self._writer = SegmentWriter(
            self._root,
            identity,
            self.clock.wall_at(media_position),
            self._tracks.video,
            self._tracks.audio,
        )

    def _close_segment(self, media_end: int) -> bool:
        """Closes the open segment at ``media_end``; True if the clock stepped meanwhile."""
        writer, self._writer = self._writer, None
        assert writer is not None and self._run_origin is not None
        times = self.clock.close_segment(media_end)
        closed = writer.close(
            times.start_us, times.end_us, self._run_origin + media_end
        )
        self._seq += 1
        self.last_end_us = closed.end_us
        self._emit(closed)
        if times.clock_step:
            log.warning(
                "server clock step %s",
                fields(camera=self._camera_id, segment=closed.path, run=self._run_id),
            )
        return times.clock_step

    def finish(self) -> None:
        """Closes the open segment at the end of the run (it stays recorded). Blocking."""
        for (held, held_arrival_us), dts in self._synth.flush():
            self._write_video(held, dts, held_arrival_us)
        writer = self._writer
        if writer is None or self._run_origin is None:
            return
        end = writer.media_end()
        if end is None:
            writer.abandon()
            self._writer = None
            return
        self._close_segment(end - self._run_origin)

    def abandon(self) -> None:
        """Drops the open segment's muxer after a storage failure; recovery repairs it."""
        if self._writer is not None:
            self._writer.abandon()
            self._writer = None
