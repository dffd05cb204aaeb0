"""Wall time assignment, dts synthesis and dts sanity, driven by a fake clock."""

import itertools
from fractions import Fraction

import pytest

from nvr.ingest.timing import DtsGuard, DtsSynthesizer, RunClock, TimestampBreak

TB = Fraction(1, 90000)
FRAME = 3600  # ticks of one frame at 25 fps
SECOND = 90000
T0_US = 1_800_000_000_000_000  # capture instant of the run's first keyframe


def feed_segment(
    clock: RunClock,
    first_frame: int,
    frames: int,
    arrival_us: "ArrivalModel",
) -> int:
    """Observes ``frames`` packets from ``first_frame`` on; returns the media end."""
    for index in range(first_frame, first_frame + frames):
        media = index * FRAME
        clock.observe(arrival_us(index, media), media)
    return (first_frame + frames) * FRAME


class ArrivalModel:
    """Arrival instant of frame ``index``: capture on a camera clock plus network delay."""

    def __init__(
        self, drift_ppm: int = 0, delay_us: int = 40_000, burst_frames: int = 0
    ):
        self.drift_ppm = drift_ppm
        self.delay_us = delay_us
        self.burst_frames = burst_frames

    def __call__(self, index: int, media: int) -> int:
        # the camera's media clock runs drift_ppm fast: real time is media time shrunk
        media_us = media * 1_000_000 // SECOND
        capture_us = T0_US + media_us - media_us * self.drift_ppm // 1_000_000
        if index < self.burst_frames:
            # frames buffered before connect all arrive at once, at the burst's end
            burst_end_us = T0_US + self.burst_frames * 40_000
            return burst_end_us + self.delay_us
        return capture_us + self.delay_us


def test_run_clock_burst_at_connect_anchors_on_earliest_capture() -> None:
    clock = RunClock(TB)
    arrival = ArrivalModel(delay_us=30_000, burst_frames=25)  # 1 s buffered at connect
    end = feed_segment(clock, 0, 125, arrival)

    times = clock.close_segment(end)

    # the burst arrived ~1 s late; the anchor comes from packets that arrived on time
    assert times.start_us == T0_US + 30_000
    assert times.end_us - times.start_us == 5_000_000
    assert not times.clock_step


def test_run_clock_segments_tile_exactly() -> None:
    clock = RunClock(TB)
    arrival = ArrivalModel()
    previous_end_us = None
    for segment in range(5):
        end = feed_segment(clock, segment * 125, 125, arrival)
        times = clock.close_segment(end)
        if previous_end_us is not None:
            assert times.start_us == previous_end_us
        previous_end_us = times.end_us


def test_run_clock_drifting_camera_slews_within_1000_ppm() -> None:
    clock = RunClock(TB)
    arrival = ArrivalModel(drift_ppm=500)  # camera clock 500 ppm fast
    durations_us = []
    last_end_us = 0
    for segment in range(40):
        end = feed_segment(clock, segment * 1500, 1500, arrival)  # 60 s segments
        times = clock.close_segment(end)
        durations_us.append(times.end_us - times.start_us)
        last_end_us = times.end_us

    # every later segment is shortened by the drift, never by more than 1000 ppm
    for duration_us in durations_us[1:]:
        assert 60_000_000 * 999 // 1000 <= duration_us <= 60_000_000
    # and the assigned end tracks the real instant (40 min: 1.2 s of drift) within a
    # frame, offset by the network's smallest delay, which no receiver can observe
    real_end_us = arrival(40 * 1500, 40 * 1500 * FRAME)
    assert abs(last_end_us - real_end_us) <= 40_000


def test_run_clock_late_packets_do_not_move_wall_time() -> None:
    clock = RunClock(TB)
    arrival = ArrivalModel()
    end = feed_segment(clock, 0, 125, arrival)
    first = clock.close_segment(end)

    # a 2 s network hiccup: every packet of the next segment arrives late but one
    for index in range(125, 250):
        late_us = 0 if index == 249 else 2_000_000
        clock.observe(arrival(index, index * FRAME) + late_us, index * FRAME)
    second = clock.close_segment(250 * FRAME)

    assert second.start_us == first.end_us
    assert second.end_us - second.start_us == 5_000_000
    assert not second.clock_step


def test_run_clock_server_clock_steps_forward_flags_clock_step() -> None:
    offset_us = [0]
    clock = RunClock(TB, clock_offset_us=lambda: offset_us[0])
    arrival = ArrivalModel()
    clock.close_segment(feed_segment(clock, 0, 125, arrival))

    def stepped(index: int, media: int) -> int:
        return (
            arrival(index, media) + 3_600_000_000
        )  # NTP stepped the server an hour ahead

    offset_us[0] = 3_600_000_000  # wall time moved against the monotonic clock
    times = clock.close_segment(feed_segment(clock, 125, 125, stepped))

    assert times.clock_step
    assert times.end_us - times.start_us <= 5_005_000  # the step is not smeared in


def test_run_clock_packets_late_on_overloaded_node_is_not_a_clock_step() -> None:
    clock = RunClock(TB, clock_offset_us=lambda: 0)
    arrival = ArrivalModel()
    first = clock.close_segment(feed_segment(clock, 0, 125, arrival))

    def late(index: int, media: int) -> int:
        return arrival(index, media) + 8_000_000  # every packet delivered 8 s late

    times = clock.close_segment(feed_segment(clock, 125, 125, late))

    assert not times.clock_step
    assert times.start_us == first.end_us
    assert times.end_us - times.start_us <= 5_005_000  # only the bounded slew


def test_run_clock_server_clock_steps_back_raises_clock_step() -> None:
    offset_us = [0]
    clock = RunClock(TB, clock_offset_us=lambda: offset_us[0])
    arrival = ArrivalModel()
    clock.close_segment(feed_segment(clock, 0, 125, arrival))

    offset_us[0] = -60_000_000  # wall time moved back against the monotonic clock
    with pytest.raises(TimestampBreak) as caught:
        clock.observe(arrival(130, 130 * FRAME) - 60_000_000, 130 * FRAME)
    assert caught.value.reason == "clock-step"


def test_run_clock_camera_clock_running_fast_is_a_timestamp_jump() -> None:
    clock = RunClock(TB, clock_offset_us=lambda: 0)  # the server clock never moves

    def fast(index: int, media: int) -> int:
        return T0_US + media * 1_000_000 // SECOND // 3  # media time runs 3x real time

    with pytest.raises(TimestampBreak) as caught:
        clock.close_segment(feed_segment(clock, 0, 125, fast))
        feed_segment(clock, 125, 125, fast)

    assert caught.value.reason == "timestamp-jump"
    assert "camera's clock runs ahead" in str(caught.value)


def test_run_clock_camera_clock_running_fast_segment_never_ends_after_arrival() -> None:
    clock = RunClock(TB, clock_offset_us=lambda: 0)

    def fast(index: int, media: int) -> int:
        return T0_US + media * 1_000_000 // SECOND * 2 // 3  # 1.5x real time

    end = feed_segment(clock, 0, 125, fast)  # 5 s of media that arrived within 3.33 s
    times = clock.close_segment(end)

    last_arrival_us = fast(124, 124 * FRAME)
    assert times.end_us <= last_arrival_us + 40_000  # plus the last frame's own length
    assert times.end_us > times.start_us


def test_run_clock_wall_at_before_first_close_uses_anchor() -> None:
    clock = RunClock(TB)
    clock.observe(T0_US + 50_000, 0)
    clock.observe(T0_US + 1_020_000, SECOND)  # 1 s later, 20 ms late

    assert clock.wall_at(2 * SECOND) == T0_US + 20_000 + 2_000_000


def decode_order_pts(gops: int) -> list[int]:
    """Presentation times (frames) of closed GOPs I P B B P B B ... in decode order."""
    order = []
    for gop in range(gops):
        base = gop * 7
        order += [base, base + 3, base + 1, base + 2, base + 6, base + 4, base + 5]
    return order


def test_dts_synthesizer_bframes_without_dts_gives_monotonic_dts_not_after_pts() -> (
    None
):
    synth: DtsSynthesizer[int] = DtsSynthesizer(reorder_depth=2)
    released: list[tuple[int, int]] = []
    pts_list = [p * FRAME for p in decode_order_pts(3)]
    for index, pts in enumerate(pts_list):
        released += synth.push(index, pts, None)
    released += synth.flush()

    assert [index for index, _ in released] == list(range(len(pts_list)))
    dts_list = [dts for _, dts in released]
    assert all(b > a for a, b in itertools.pairwise(dts_list))
    assert all(dts <= pts for dts, pts in zip(dts_list, pts_list, strict=True))
    # after the warm-up, decode times advance one frame per packet, as the camera's would
    assert all(b - a == FRAME for a, b in itertools.pairwise(dts_list[2:]))


def test_dts_synthesizer_dts_missing_only_at_start_fills_below_first_real_dts() -> None:
    synth: DtsSynthesizer[str] = DtsSynthesizer(reorder_depth=2)
    out = synth.push("I", 2 * FRAME, None)
    out += synth.push("P", 5 * FRAME, None)
    out += synth.push("B", 3 * FRAME, 2 * FRAME)  # the demuxer starts giving dts here

    assert [item for item, _ in out] == ["I", "P", "B"]
    dts_list = [dts for _, dts in out]
    assert dts_list[0] < dts_list[1] < dts_list[2] == 2 * FRAME
    assert dts_list[0] <= 2 * FRAME and dts_list[1] <= 5 * FRAME


def test_dts_synthesizer_stream_with_dts_passes_through_unchanged() -> None:
    synth: DtsSynthesizer[int] = DtsSynthesizer(reorder_depth=2)
    out = []
    for index in range(10):
        out += synth.push(index, index * FRAME + 2 * FRAME, index * FRAME)

    assert out == [(index, index * FRAME) for index in range(10)]


def test_dts_guard_backwards_dts_ends_run() -> None:
    guard = DtsGuard(TB)
    guard.check(0)
    guard.check(FRAME)

    with pytest.raises(TimestampBreak) as caught:
        guard.check(FRAME // 2)
    assert caught.value.reason == "timestamp-jump"


def test_dts_guard_repeated_dts_ends_run() -> None:
    guard = DtsGuard(TB)
    guard.check(FRAME)

    with pytest.raises(TimestampBreak):
        guard.check(FRAME)


def test_dts_guard_forward_leap_over_limit_ends_run() -> None:
    guard = DtsGuard(TB, max_jump_s=10)
    guard.check(0)
    guard.check(9 * SECOND)  # a 9 s gap is tolerated (camera paused its encoder)

    with pytest.raises(TimestampBreak) as caught:
        guard.check(9 * SECOND + 11 * SECOND)
    assert caught.value.reason == "timestamp-jump"
