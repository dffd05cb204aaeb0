"""Timestamps of one run: wall time assignment, dts repair and sanity checks (pure logic).

Nothing here reads a clock: callers pass arrival instants in, so tests drive it with a
fake clock. Wall instants are UTC microseconds (``*_us``); media positions are video
timebase ticks counted from the run's first keyframe (``media_*``). ``docs/time.md``
explains the model.
"""

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Generic, TypeVar

from nvr.errors import CameraError
from nvr.timeutil import monotonic_us, ticks_to_us, wall_now_us

T = TypeVar("T")

MAX_SLEW_PPM = 1000
"""The most a segment's wall duration may differ from its media duration, per million."""
CLOCK_STEP_LIMIT_US = 3_000_000
"""Measured and assigned wall time further apart than this means the server clock stepped."""
MAX_DTS_JUMP_S = 10
"""A forward video dts jump longer than this breaks the run (camera restarted its clock)."""


class TimestampBreak(CameraError):
    """The run's timestamps can no longer be trusted; the run ends with ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class SegmentTimes:
    """The wall interval assigned to one closed segment of a run."""

    start_us: int
    end_us: int
    clock_step: bool  # measured and assigned diverged: end the run after this segment


def _wall_minus_monotonic_us() -> int:
    return wall_now_us() - monotonic_us()


class RunClock:
    """Assigns wall time to the segments of one run.

    Arrival is not capture: packets arrive late and ~1 s of them arrive in a burst at
    connect. Each video packet gives a candidate anchor ``arrival_us - offset_us`` (the
    wall instant of media position 0 if that packet had arrived with no delay). Packets
    never arrive before they are captured, so the smallest candidate is the best anchor.
    The anchor is refined until the first segment closes; after that, segments tile: each
    starts where the previous one ended and lasts its media duration plus a slew, bounded
    to ``MAX_SLEW_PPM``, toward the smallest candidate measured over that segment. The slew
    follows a drifting camera clock without ever jumping.
    """

    def __init__(
        self,
        time_base: Fraction,
        max_slew_ppm: int = MAX_SLEW_PPM,
        step_limit_us: int = CLOCK_STEP_LIMIT_US,
        clock_offset_us: Callable[[], int] | None = None,
    ) -> None:
        self._time_base = time_base
        # A stepped server clock moves wall time against the monotonic clock; packets that
        # merely arrive late (an overloaded node) do not. Only the former ends a run.
        self._clock_offset_us = clock_offset_us or _wall_minus_monotonic_us
        self._offset_at_start_us = self._clock_offset_us()
        self._max_slew_ppm = max_slew_ppm
        self._step_limit_us = step_limit_us
        self._anchor_us: int | None = (
            None  # wall instant of media position 0 (first segment)
        )
        self._segment_min_candidate_us: int | None = None
        self._first_candidate_us: int | None = None
        self._closed_end_us: int | None = None  # wall end of the last closed segment
        self._closed_end_media = 0  # media position where the last closed segment ended
        # (arrival, media position) of the latest-arriving packet: nothing it carries
        # was captured after it arrived
        self._latest: tuple[int, int] | None = None

    def observe(self, arrival_us: int, media_position: int) -> None:
        """Records one video packet's arrival; raises TimestampBreak on a backward step."""
        candidate_us = arrival_us - ticks_to_us(media_position, self._time_base)
        if self._latest is None or arrival_us >= self._latest[0]:
            self._latest = (arrival_us, media_position)
        if (
            self._segment_min_candidate_us is None
            or candidate_us < self._segment_min_candidate_us
        ):
            self._segment_min_candidate_us = candidate_us
        if self._closed_end_us is None:
            # the anchor may drop by the connect burst (about a second), not by more
            if self._first_candidate_us is None:
                self._first_candidate_us = candidate_us
            elif candidate_us < self._first_candidate_us - self._step_limit_us:
                self._arrived_early(self._first_candidate_us - candidate_us)
            if self._anchor_us is None or candidate_us < self._anchor_us:
                self._anchor_us = candidate_us
            return

        # a packet arriving long before its assigned capture time
        assigned_us = self.wall_at(media_position)
        if arrival_us < assigned_us - self._step_limit_us:
            self._arrived_early(assigned_us - arrival_us)

    def _arrived_early(self, early_us: int) -> None:
        """Ends the run: a frame arrived ``early_us`` before its capture time. The
        server clock went back, or (the server clock unmoved) the camera's media clock
        runs ahead of real time."""
        if self._offset_moved_us() > self._step_limit_us // 2:
            raise TimestampBreak(
                "clock-step", f"packet arrived {early_us} us before capture"
            )
        raise TimestampBreak(
            "timestamp-jump",
            f"the camera's clock runs ahead of real time: a frame arrived "
            f"{early_us} us before its capture time",
        )

    def wall_at(self, media_position: int) -> int:
        """The provisional wall instant of a media position (for names and status)."""
        if self._closed_end_us is not None:
            elapsed = media_position - self._closed_end_media
            return self._closed_end_us + ticks_to_us(elapsed, self._time_base)
        if self._anchor_us is None:
            raise ValueError("no packet observed yet")
        return self._anchor_us + ticks_to_us(media_position, self._time_base)

    def close_segment(self, media_end: int) -> SegmentTimes:
        """Assigns the wall interval of the segment ending at ``media_end``.

        The segment starts at the previous segment's end (or media position 0 for the
        first). Call once per segment, in order, after observing its packets.
        """
        if self._anchor_us is None or self._segment_min_candidate_us is None:
            raise ValueError("no packet observed in this segment")
        duration_us = ticks_to_us(media_end - self._closed_end_media, self._time_base)
        if self._closed_end_us is None:
            start_us = self._anchor_us + ticks_to_us(
                self._closed_end_media, self._time_base
            )
            times = SegmentTimes(start_us, start_us + duration_us, clock_step=False)
        else:
            times = self._slewed(self._closed_end_us, duration_us, media_end)
        times = self._not_after_arrival(times, media_end)
        self._closed_end_us = times.end_us
        self._closed_end_media = media_end
        self._segment_min_candidate_us = None
        return times

    def _not_after_arrival(self, times: SegmentTimes, media_end: int) -> SegmentTimes:
        """Caps the end at what the latest packet allows: it was captured before it
        arrived, and the segment ends at most the rest of its media after it.

        A sane stream never reaches the cap (the anchor is the earliest arrival). A
        camera clock running fast would otherwise give segments that end in the future,
        and the next run, anchored on real arrivals, would be pushed later still.
        """
        assert self._latest is not None
        arrival_us, position = self._latest
        latest_end_us = arrival_us + ticks_to_us(
            max(0, media_end - position), self._time_base
        )
        if times.end_us <= latest_end_us:
            return times
        return replace(times, end_us=max(times.start_us + 1, latest_end_us))

    def _offset_moved_us(self) -> int:
        """How far the server's wall clock moved against the monotonic one since the
        run started (a step: NTP or an admin setting the clock)."""
        return abs(self._clock_offset_us() - self._offset_at_start_us)

    def _slewed(self, start_us: int, duration_us: int, media_end: int) -> SegmentTimes:
        """The end of a later segment, moved toward the measured anchor by a bounded slew."""
        assert self._segment_min_candidate_us is not None
        measured_end_us = self._segment_min_candidate_us + ticks_to_us(
            media_end, self._time_base
        )
        error_us = measured_end_us - (start_us + duration_us)
        bound_us = duration_us * self._max_slew_ppm // 1_000_000
        slew_us = max(-bound_us, min(bound_us, error_us))
        return SegmentTimes(
            start_us,
            start_us + duration_us + slew_us,
            clock_step=abs(error_us) > self._step_limit_us
            and self._offset_moved_us() > self._step_limit_us // 2,
        )


class DtsSynthesizer(Generic[T]):
    """Gives every video packet a decode timestamp, strictly increasing and <= its pts.

    RTSP demuxing leaves dts unset on the first packets of a B-frame stream. Like
    FFmpeg's demuxer, the dts of a packet is the smallest of the ``reorder_depth + 1``
    largest presentation timestamps seen so far; the first ``reorder_depth`` packets wait
    in a buffer until that window is full and then get dts values just below it.
    """

    def __init__(self, reorder_depth: int) -> None:
        self._depth = max(0, reorder_depth)
        self._window: list[int] = []  # the depth + 1 largest pts seen, ascending
        self._waiting: list[
            tuple[T, int]
        ] = []  # (item, pts) waiting for the window to fill
        self._last_dts: int | None = None

    def push(self, item: T, pts: int, dts: int | None) -> list[tuple[T, int]]:
        """Adds one packet in decode order; returns the packets now ready, with their dts."""
        self._remember(pts)
        if dts is None and len(self._window) <= self._depth:
            self._waiting.append((item, pts))
            return []
        if dts is None:
            dts = self._window[0]
        ready = list(self._release_waiting(dts))
        ready.append((item, self._increasing(dts)))
        return ready

    def flush(self) -> list[tuple[T, int]]:
        """Releases buffered packets at the end of a run."""
        if not self._waiting:
            return []
        return list(self._release_waiting(self._window[0]))

    def _remember(self, pts: int) -> None:
        bisect.insort(self._window, pts)
        if len(self._window) > self._depth + 1:
            del self._window[0]

    def _release_waiting(self, next_dts: int) -> Iterator[tuple[T, int]]:
        """Waiting packets get dts evenly spaced just below ``next_dts``."""
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        if len(waiting) == 1 and len(self._window) == 1:
            step = 1
        else:
            step = max(
                1, (self._window[-1] - self._window[0]) // max(1, len(self._window) - 1)
            )
        for index, (item, _pts) in enumerate(waiting):
            yield item, self._increasing(next_dts - (len(waiting) - index) * step)

    def _increasing(self, dts: int) -> int:
        if self._last_dts is not None and dts <= self._last_dts:
            dts = self._last_dts + 1
        self._last_dts = dts
        return dts


class DtsGuard:
    """Ends a run when video dts goes backwards, stalls, or leaps forward."""

    def __init__(self, time_base: Fraction, max_jump_s: int = MAX_DTS_JUMP_S) -> None:
        self._max_jump = round(max_jump_s / time_base)
        self._last_dts: int | None = None

    def check(self, dts: int) -> None:
        """Raises TimestampBreak('timestamp-jump') unless ``dts`` moves forward sanely."""
        last = self._last_dts
        if last is not None and dts <= last:
            raise TimestampBreak("timestamp-jump", f"video dts {dts} after {last}")
        if last is not None and dts - last > self._max_jump:
            raise TimestampBreak(
                "timestamp-jump", f"video dts leapt {dts - last} ticks"
            )
        self._last_dts = dts
