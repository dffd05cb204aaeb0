"""One run of one camera on the native path: access units in, segment files out.

The run starts at the first video keyframe. Frames are held until the next keyframe
(one GOP, which becomes one fragment), so decode times can be derived exactly from the
presentation times RTP carries: sorted, and shifted back by the largest reordering seen,
they give strictly increasing decode times with non-negative composition offsets, for
B-frame streams too. Each fragment tiles onto the previous one and is written once the
audio that plays with it has arrived (audio lags the video that ends a fragment). A
segment is cut at the first keyframe once ``segment_seconds`` of media have passed.

Positions: video ticks (the RTP clock, normally 90 kHz) counted from the run's first
decode time (``*_pos``); ``pts`` values count from the first keyframe's RTP time. Wall
time comes from RunClock, fed each frame's arrival once its decode position is known.
Pure logic apart from the SegmentSink it queues file work on; it runs on the event loop.
"""

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from nvr.errors import CameraProtocolError
from nvr.ingest.native_io import SegmentSink
from nvr.ingest.native_tracks import (
    AAC_FRAME_SAMPLES,
    AUDIO_TRACK_ID,
    VIDEO_TRACK_ID,
    AudioSetup,
    VideoSetup,
    inband_parameter_sets,
    is_vcl,
)
from nvr.ingest.timing import MAX_DTS_JUMP_S, RunClock, TimestampBreak
from nvr.log import fields
from nvr.mp4.write import (
    NON_SYNC_SAMPLE_FLAGS,
    SYNC_SAMPLE_FLAGS,
    TrackFragment,
    fragment,
    init_segment,
)
from nvr.rtsp.rtp import AccessUnit
from nvr.segmenter.files import partial_path
from nvr.segmenter.finalize import SegmentIdentity, TrackFacts
from nvr.timeutil import US_PER_S, monotonic_us

log = logging.getLogger(__name__)

MAX_BACKWARD_S = 2
"""A presentation time this far before the previous one is a camera clock reset, not
B-frame reordering."""
FRAGMENT_MAX_S = 10
FRAGMENT_MAX_BYTES = 16 << 20
"""A GOP longer than this is written as several fragments, so memory stays bounded and
a crash loses at most this much of a camera with very long keyframe intervals."""
MAX_CARRY_BYTES = 1 << 20
"""Parameter sets and SEI waiting for their picture; a camera sending more than this
without a picture is broken, and holding it all would grow the worker without bound."""
MEDIA_LAG_LIMIT_US = 20 * US_PER_S
"""Video RTP time this far behind real time (monotonic) since the run began means the
camera's timestamps stopped advancing (stuck, or oscillating): the run ends, so that no
segment grows forever without reaching its cut."""
_CUT_TOLERANCE = Fraction(1, 100)  # seconds; RTP times jitter by a tick or two


@dataclass(slots=True)
class _Frame:
    pts: int
    data: list[bytes]
    size: int
    keyframe: bool
    arrival_us: int


@dataclass(slots=True)
class _Segment:
    seq: int
    start_pos: int
    size: int
    keyframes: list[tuple[int, int]] = field(default_factory=list)
    audio_end: int | None = None  # audio decode time just past its last sample


@dataclass(slots=True)
class _Held:
    """A fragment's video, waiting for the audio that plays with it."""

    segment: _Segment
    video: TrackFragment
    keyframe: bool
    end_pos: int  # where its video ends
    closes: bool = False  # the segment ends with this fragment


class AudioSync:
    """Maps audio RTP time onto the video's: both tracks' RTP times at one instant.

    From the PLAY answer's RTP-Info when the camera sends it (RFC 2326 §12.33), else
    from the arrival of the first frame of each track.

    # Limitation: without RTP-Info, arrival pairs the tracks to within the network
    # jitter of the first packets (tens of ms); RTCP sender reports would be exact.
    """

    def __init__(
        self, rtpinfo: tuple[int, int] | None, video_rate: int, audio_rate: int
    ):
        self._rtpinfo = rtpinfo  # (video rtptime, audio rtptime), 32-bit
        self._video_rate = video_rate
        self._audio_rate = audio_rate

    def audio_origin(
        self,
        video_origin: int,
        video_arrival_us: int,
        first_audio: int,
        audio_arrival_us: int,
    ) -> int:
        """The audio RTP time (unwrapped like ``first_audio``) at video RTP time
        ``video_origin``."""
        if self._rtpinfo is not None:
            video_info, audio_info = self._rtpinfo
            video_offset = _signed32(video_origin - video_info)
            at_origin = audio_info + video_offset * self._audio_rate // self._video_rate
            return first_audio - _signed32(first_audio - at_origin)
        elapsed_us = audio_arrival_us - video_arrival_us
        return first_audio - elapsed_us * self._audio_rate // 1_000_000


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


class NativeRun:
    """Records one connection's access units into segments of one run."""

    def __init__(
        self,
        root: Path,
        identity: tuple[str, str],
        segment_seconds: float,
        codec: str,
        video: Callable[[AccessUnit], VideoSetup],
        audio: AudioSetup | None,
        sync: AudioSync | None,
        sink: SegmentSink,
        monotonic: Callable[[], int] = monotonic_us,
    ) -> None:
        self._root = root
        self._monotonic = monotonic
        self._camera_id, self._run_id = identity
        self._segment_seconds = segment_seconds
        self._codec = codec  # "h264" or "hevc"
        self._make_video = video
        self._audio = audio
        self._sync = sync
        self._sink = sink
        self._video: VideoSetup | None = None
        self._facts: TrackFacts | None = None
        self._init: bytes = b""
        self._timescale = 90000
        self._segment_ticks = 0
        self.clock = RunClock(Fraction(1, 90000))
        self._carry: list[bytes] = []  # parameter sets and SEI waiting for a picture
        self._carry_size = 0
        self._origin: int | None = None  # RTP time of the first keyframe
        self._origin_arrival_us = 0
        self._origin_monotonic_us = 0
        self._inband: tuple[bytes, ...] = ()
        self._last_pts: int | None = None
        self._max_pts = 0
        self._gop: list[_Frame] = []
        self._gop_size = 0
        self._delay = 0  # largest reordering seen: pts minus decode time
        self._base: int | None = None  # pts of decode position 0
        self._next_pos: int | None = None  # where the next fragment starts
        self._frame_ticks = 3600
        self._audio_origin: int | None = None
        self._audio_units: list[AccessUnit] = []
        self._held: _Held | None = None
        self._segment: _Segment | None = None
        self._seq = 0
        self._fragments = 0
        self.segments_closed = 0
        self.last_end_us: int | None = None
        self.skipped_before_keyframe = 0
        self.pictures = 0  # pictures taken into the run (from its first keyframe on)

    # input

    def video_unit(self, unit: AccessUnit, arrival_us: int) -> None:
        """Takes one video access unit; raises TimestampBreak when the run must end."""
        if not any(is_vcl(nal, self._codec) for nal in unit.data[1::2]):
            # parameter sets or SEI sent apart from their picture
            self._carry.extend(unit.data)
            self._carry_size += unit.size
            if self._carry_size > MAX_CARRY_BYTES:
                raise CameraProtocolError(
                    f"the camera sent {self._carry_size} bytes of parameter sets and "
                    "SEI without a picture"
                )
            return
        if self._carry:
            unit.data[:0] = self._carry
            unit.size += self._carry_size
            self._carry, self._carry_size = [], 0
        if self._origin is None:
            if not unit.keyframe:
                self.skipped_before_keyframe += 1
                return
            self._start(unit, arrival_us)
        assert self._origin is not None and self._video is not None
        self.pictures += 1
        pts = unit.rtp_time - self._origin
        self._check_lag(pts)
        if self._gop and self._gop[-1].pts == pts:
            self._same_picture(self._gop[-1], unit)
            return
        self._check_jump(pts)
        if unit.keyframe:
            if self._gop:
                self._flush(pts)
            self._check_parameter_sets(unit)
            self._cut_if_due()
        elif self._gop and self._fragment_full(pts):
            self._flush(pts, gop_ends=False)
        self._gop.append(_Frame(pts, unit.data, unit.size, unit.keyframe, arrival_us))
        self._gop_size += unit.size

    def audio_unit(self, unit: AccessUnit, arrival_us: int) -> None:
        """Takes one audio frame; frames before the run's first keyframe are dropped."""
        if self._audio is None or self._origin is None:
            return
        if self._audio_origin is None:
            assert self._sync is not None
            self._audio_origin = self._sync.audio_origin(
                self._origin, self._origin_arrival_us, unit.rtp_time, arrival_us
            )
        self._audio_units.append(unit)
        self._write_held_if_heard()

    def finish(self) -> None:
        """Writes what is held and closes the open segment (it stays recorded)."""
        self._write_held(end_of_run=True)
        if self._gop:
            self._flush(None)
            self._write_held(end_of_run=True)
        if self._segment is not None and self._next_pos is not None:
            self._close_segment(self._segment, self._next_pos, end_of_run=True)

    # the run's tracks

    def _start(self, unit: AccessUnit, arrival_us: int) -> None:
        self._video = self._make_video(unit)
        self._inband = inband_parameter_sets(unit.data[1::2], self._video.codec)
        self._timescale = self._video.spec.timescale
        self.clock = RunClock(Fraction(1, self._timescale))
        self._segment_ticks = round(
            (Fraction(self._segment_seconds) - _CUT_TOLERANCE) * self._timescale
        )
        tracks = [self._video.spec] + ([self._audio.spec] if self._audio else [])
        self._init = init_segment(tracks)
        self._facts = TrackFacts(
            self._video.codec,
            "aac" if self._audio is not None else None,
            self._video.spec.width,
            self._video.spec.height,
        )
        self._origin = unit.rtp_time
        self._origin_arrival_us = arrival_us
        self._origin_monotonic_us = self._monotonic()

    def _same_picture(self, frame: _Frame, unit: AccessUnit) -> None:
        """A unit with the previous one's RTP time is more of the same picture (a camera
        that sets the marker bit after each slice): its NAL units join that frame.

        A camera whose clock stopped sends every frame with one time: they would merge
        into one ever-growing frame, so past a fragment's size the run ends.
        """
        frame.data.extend(unit.data)
        frame.size += unit.size
        frame.keyframe = frame.keyframe or unit.keyframe
        self._gop_size += unit.size
        if frame.size > FRAGMENT_MAX_BYTES:
            raise TimestampBreak(
                "timestamp-jump",
                f"video RTP time stopped advancing ({frame.size} bytes share one time)",
            )

    def _check_lag(self, pts: int) -> None:
        """Ends the run when video RTP time has fallen far behind real time."""
        self._max_pts = max(self._max_pts, pts)
        elapsed_us = self._monotonic() - self._origin_monotonic_us
        lag_us = elapsed_us - self._max_pts * US_PER_S // self._timescale
        if lag_us > MEDIA_LAG_LIMIT_US:
            raise TimestampBreak(
                "timestamp-jump",
                f"video RTP time fell {lag_us // US_PER_S} s behind real time "
                "(the camera's timestamps stopped advancing)",
            )

    def _check_jump(self, pts: int) -> None:
        last = self._last_pts
        self._last_pts = pts
        if last is None:
            return
        delta = pts - last
        if delta > MAX_DTS_JUMP_S * self._timescale:
            raise TimestampBreak(
                "timestamp-jump", f"video RTP time leapt {delta} ticks"
            )
        if delta < -MAX_BACKWARD_S * self._timescale:
            raise TimestampBreak(
                "timestamp-jump", f"video RTP time went back {-delta} ticks"
            )

    def _check_parameter_sets(self, keyframe: AccessUnit) -> None:
        """Ends the run when a keyframe's in-band parameter sets differ from the run's:
        the sample entry (and the index's width and height) would describe the old
        stream. The reconnect that follows reads the camera's new description."""
        assert self._video is not None
        found = inband_parameter_sets(keyframe.data[1::2], self._video.codec)
        if not found:
            return
        if not self._inband:
            self._inband = found
        elif found != self._inband:
            raise TimestampBreak(
                "stream-changed",
                "new video parameter sets (resolution or encoder settings)",
            )

    def _fragment_full(self, pts: int) -> bool:
        """Whether to end the fragment before the frame presented at ``pts``."""
        too_long = pts - self._gop[0].pts >= FRAGMENT_MAX_S * self._timescale
        if not too_long and self._gop_size < FRAGMENT_MAX_BYTES:
            return False
        # only before a frame presented after every held one (a reference frame, not a
        # B-frame): the held frames' decode times are then their sorted presentation
        # times, as for a whole GOP
        return pts > max(frame.pts for frame in self._gop)

    # fragments

    def _flush(self, next_pts: int | None, gop_ends: bool = True) -> None:
        """Makes the GOP's frames one fragment; ``next_pts`` is the frame after them,
        a keyframe unless ``gop_ends`` is false.

        The fragment is written once audio has reached its end (see _write_held).
        """
        self._write_held()
        frames, self._gop, self._gop_size = self._gop, [], 0
        pts = [frame.pts for frame in frames]
        ordered = sorted(pts)
        self._delay = max(
            self._delay, max(o - p for o, p in zip(ordered, pts, strict=True))
        )
        if self._base is None:
            self._base = ordered[0] - self._delay
        decode = self._decode_positions(ordered)
        end = decode[-1] + self._frame_ticks
        if next_pts is not None and gop_ends:
            end = next_pts - self._delay - self._base
        elif next_pts is not None:
            # mid-GOP, B-frames decoded after the next frame may present before it
            end = min(end, next_pts - self._delay - self._base)
        end = max(end, decode[-1] + 1)
        durations = [b - a for a, b in itertools.pairwise(decode)]
        durations.append(end - decode[-1])
        if len(durations) > 1:
            self._frame_ticks = durations[-2]

        for frame, position in zip(frames, decode, strict=True):
            self.clock.observe(frame.arrival_us, position)
        segment = self._segment or self._open_segment(decode[0])
        base = self._base
        video = TrackFragment(
            VIDEO_TRACK_ID,
            decode[0] - segment.start_pos,
            durations,
            [frame.size for frame in frames],
            [
                SYNC_SAMPLE_FLAGS if f.keyframe else NON_SYNC_SAMPLE_FLAGS
                for f in frames
            ],
            [p - base - d for p, d in zip(pts, decode, strict=True)],
            [b"".join(chunk for frame in frames for chunk in frame.data)],
        )
        self._held = _Held(segment, video, frames[0].keyframe, end)
        self._next_pos = end
        if self._audio is None:
            self._write_held()
        else:
            self._write_held_if_heard()

    def _write_held_if_heard(self) -> None:
        """Writes the held fragment once an audio frame at or past its end arrived.

        Audio arrives after the video frame that ends a fragment (it is sent once a
        whole frame is captured, and B-frame streams send a keyframe ahead of the
        frames shown before it); written at once, a segment would lose the audio of its
        last tens of milliseconds, which the next segment cannot place before its start.
        """
        held = self._held
        if held is None or not self._audio_units or self._audio_origin is None:
            return
        if self._audio_units[-1].rtp_time >= self._audio_stop(held):
            self._write_held()

    def _audio_stop(self, held: _Held) -> int:
        """The audio RTP time where ``held``'s video ends."""
        assert self._audio is not None and self._audio_origin is not None
        assert self._base is not None
        rate = self._audio.clock_rate
        return (
            self._audio_origin + (held.end_pos + self._base) * rate // self._timescale
        )

    def _write_held(self, end_of_run: bool = False) -> None:
        """Writes the held fragment with the audio before its end; closes its segment
        if the segment ends there."""
        held, self._held = self._held, None
        if held is None:
            return
        segment = held.segment
        tracks = [held.video]
        audio = self._audio_fragment(segment, held)
        if audio is not None:
            tracks.append(audio)
        self._fragments += 1
        chunks = fragment(self._fragments, tracks)
        if held.keyframe:
            segment.keyframes.append((held.video.decode_time, segment.size))
        segment.size += sum(len(chunk) for chunk in chunks)
        self._sink.append(chunks)
        if held.closes:
            self._close_segment(segment, held.end_pos, end_of_run)

    def _decode_positions(self, ordered: list[int]) -> list[int]:
        """Decode positions for the sorted presentation times of one fragment."""
        assert self._base is not None
        decode: list[int] = []
        for value in ordered:
            position = value - self._delay - self._base
            if not decode and self._next_pos is not None:
                position = self._next_pos  # fragments tile exactly
            elif decode and position <= decode[-1]:
                position = decode[-1] + 1
            decode.append(position)
        return decode

    def _audio_fragment(self, segment: _Segment, held: _Held) -> TrackFragment | None:
        """The audio frames that start before ``held``'s video ends; later ones wait
        for the next fragment."""
        if not self._audio_units or self._audio is None or self._audio_origin is None:
            return None
        stop = self._audio_stop(held)
        units = [unit for unit in self._audio_units if unit.rtp_time < stop]
        self._audio_units = [
            unit for unit in self._audio_units if unit.rtp_time >= stop
        ]
        assert self._base is not None
        rate = self._audio.clock_rate
        start = (
            self._audio_origin
            + (segment.start_pos + self._base) * rate // self._timescale
        )
        frame_ticks = AAC_FRAME_SAMPLES * rate // (self._audio.spec.sample_rate or rate)
        times: list[int] = []
        kept: list[AccessUnit] = []
        earliest = last = 0
        if segment.audio_end is not None:
            last = segment.audio_end
            earliest = last - frame_ticks + 1  # past the previous fragment's last frame
        for unit in units:
            time = unit.rtp_time - start
            if time < earliest:
                continue  # before this segment's first video frame, or a repeat
            # Note: a camera that stamps audio in whole ms steps 1008 or 1056 ticks per
            # 1024-sample frame; a fragment's first frame may then start just before
            # the previous fragment's end (its last frame counted 1024 ticks). It is
            # moved to that end, so that decode times tile, rather than dropped.
            time = max(time, last)
            times.append(time)
            kept.append(unit)
            earliest = last = time + 1
        if not kept:
            return None
        durations = [b - a for a, b in itertools.pairwise(times)] + [frame_ticks]
        segment.audio_end = times[-1] + frame_ticks
        return TrackFragment(
            AUDIO_TRACK_ID,
            times[0],
            durations,
            [unit.size for unit in kept],
            [SYNC_SAMPLE_FLAGS] * len(kept),
            None,
            [chunk for unit in kept for chunk in unit.data],
        )

    # segments

    def _cut_if_due(self) -> None:
        segment = self._segment
        if segment is None or self._next_pos is None:
            return
        if self._next_pos - segment.start_pos < self._segment_ticks:
            return
        self._segment = None
        if self._held is not None:
            self._held.closes = True  # once its audio has arrived
        else:
            self._close_segment(segment, self._next_pos, end_of_run=False)

    def _open_segment(self, start_pos: int) -> _Segment:
        path = partial_path(
            self._root,
            self._camera_id,
            self.clock.wall_at(start_pos),
            self._run_id,
            self._seq,
        )
        self._sink.open(path, self._init)
        self._segment = _Segment(self._seq, start_pos, len(self._init))
        return self._segment

    def _close_segment(self, segment: _Segment, end_pos: int, end_of_run: bool) -> None:
        if self._segment is segment:
            self._segment = None
        assert self._facts is not None
        times = self.clock.close_segment(end_pos)
        identity = SegmentIdentity(
            self._camera_id,
            self._run_id,
            segment.seq,
            segment.start_pos,
            Fraction(1, self._timescale),
        )
        self._sink.close(
            self._root,
            identity,
            self._facts,
            (times.start_us, times.end_us),
            (segment.start_pos, end_pos - segment.start_pos, self._timescale),
            tuple(segment.keyframes),
        )
        self._seq += 1
        self.segments_closed += 1
        self.last_end_us = times.end_us
        if times.clock_step:
            log.warning(
                "server clock step %s",
                fields(camera=self._camera_id, run=self._run_id, seq=segment.seq),
            )
            if not end_of_run:
                raise TimestampBreak(
                    "clock-step", "assigned and measured wall time diverged"
                )
