"""Time: storage and API are UTC whatever the process time zone, across daylight-saving
changes; a server clock step during recording yields no overlapping or negative segment.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from nvr.api.timerange import parse_time_range
from nvr.index.db import open_index
from nvr.index.repo import Index
from nvr.segmenter.files import closed_path
from nvr.timeutil import format_rfc3339, parse_rfc3339_us, us_to_datetime, wall_now_us
from tests.e2e.checks import assert_rows_match_files, indexed_rows, recordings, state
from tests.index.support import CAMERAS, GROUPS, segment_event

DST_ZONE = "America/New_York"
MINUTE_US = 60_000_000


@pytest.fixture
def dst_zone() -> Iterator[None]:
    """The test process itself runs in a zone with daylight saving."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = DST_ZONE
    time.tzset()
    assert time.localtime(
        parse_rfc3339_us("2026-07-01T12:00:00Z") // 1_000_000
    ).tm_isdst
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.fixture
def index(tmp_path: Path, dst_zone: None) -> Iterator[Index]:
    opened = open_index(f"sqlite:///{tmp_path / 'index.db'}")
    opened.sync_groups_and_cameras(GROUPS, CAMERAS)
    yield opened
    opened.close()


def _record_every_10_min(index: Index, first: str, count: int) -> list[int]:
    """Indexes ``count`` contiguous 10-minute segments from ``first``; their starts."""
    start_us = parse_rfc3339_us(first)
    starts = []
    for seq in range(count):
        event = segment_event(seq=seq, duration_s=600)
        at_us = start_us + seq * 10 * MINUTE_US
        path = closed_path(Path("/"), "cam1", at_us).relative_to("/").as_posix()
        event = type(event)(
            **{
                **event.__dict__,
                "start_us": at_us,
                "end_us": at_us + 10 * MINUTE_US,
                "path": path,
            }
        )
        index.add_segment(event)
        starts.append(at_us)
    return starts


def _query(index: Index, start: str, end: str) -> list[int]:
    span = parse_time_range({"start": start, "end": end})
    return [
        row.start_us
        for row in index.segments_overlapping("cam1", span.start_us, span.end_us)
    ]


def test_index_spring_forward_queries_neither_lose_nor_duplicate_an_hour(
    index: Index,
) -> None:
    # 2026-03-08 02:00 EST became 03:00 EDT (07:00Z); record 05:00Z-09:00Z
    starts = _record_every_10_min(index, "2026-03-08T05:00:00Z", 24)
    # 01:00 EST to 04:00 EDT is two hours of real time, not three
    whole = _query(index, "2026-03-08T01:00:00-05:00", "2026-03-08T04:00:00-04:00")
    assert whole == starts[6:18]
    before = _query(index, "2026-03-08T01:00:00-05:00", "2026-03-08T01:59:59-05:00")
    after = _query(index, "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00")
    assert before + after == whole  # split at the change: nothing lost, nothing twice
    assert _query(index, "2026-03-08T06:00:00Z", "2026-03-08T08:00:00Z") == whole


def test_index_fall_back_repeated_local_hour_keeps_both_hours(index: Index) -> None:
    # 2026-11-01 02:00 EDT became 01:00 EST (06:00Z): local 01:30 happened twice
    starts = _record_every_10_min(index, "2026-11-01T05:00:00Z", 18)
    first_0130 = parse_rfc3339_us("2026-11-01T01:30:00-04:00")
    second_0130 = parse_rfc3339_us("2026-11-01T01:30:00-05:00")
    assert second_0130 - first_0130 == 60 * MINUTE_US
    assert first_0130 in starts and second_0130 in starts
    rows = index.segments_overlapping("cam1", starts[0], starts[-1] + 10 * MINUTE_US)
    assert len({row.path for row in rows}) == 18  # no file name collides
    both = _query(index, "2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00")
    assert both == starts[0:12]  # local 01:00 to 02:00 after the change is two hours


def test_closed_path_date_directories_are_utc_not_local(dst_zone: None) -> None:
    evening_us = parse_rfc3339_us(
        "2026-03-08T04:30:00Z"
    )  # 23:30 on the 7th in New York
    assert time.localtime(evening_us // 1_000_000).tm_mday == 7
    assert closed_path(Path("/r"), "c", evening_us).parts[-4:-1] == ("2026", "03", "08")
    assert format_rfc3339(evening_us).endswith("Z")


_CLOCK_HOOK = """
import os, time
_real_time_ns = time.time_ns
_offset_file = os.environ["NVR_TEST_CLOCK_OFFSET_FILE"]
_cache = [-1.0, 0]
def _time_ns():
    now = time.monotonic()
    if now - _cache[0] > 0.1:
        try:
            with open(_offset_file) as f:
                _cache[1] = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
        _cache[0] = now
    return _real_time_ns() + _cache[1]
time.time_ns = _time_ns
time.time = lambda: _time_ns() / 1e9
"""


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_serve_in_dst_zone_with_server_clock_steps_stays_utc_and_never_overlaps(
    rtsp_camera_factory: Any, recorder_factory: Any, tmp_path: Path
) -> None:
    cam = rtsp_camera_factory(codec="h264")
    recorder = recorder_factory([("cam", cam.url)], segment_seconds=4)
    # the server's wall clock, stepped by writing an offset (ns) to a file; a
    # sitecustomize module in every nvr process (main and workers) applies it
    hook_dir = tmp_path / "clockhook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(_CLOCK_HOOK)
    offset_file = tmp_path / "clock_offset_ns"
    offset_file.write_text("0")
    recorder.env["PYTHONPATH"] = f"{hook_dir}{os.pathsep}{recorder.env['PYTHONPATH']}"
    recorder.env["NVR_TEST_CLOCK_OFFSET_FILE"] = str(offset_file)
    recorder.env["TZ"] = DST_ZONE
    began_us = wall_now_us()
    recorder.start()
    recorder.wait_for(lambda: state(recorder, "cam") == "recording", 60, "recording")
    recorder.wait_for(
        lambda: len(indexed_rows(recorder, "cam")) >= 2, 30, "two segments"
    )

    # UTC everywhere although the process zone is New York (-4 h or -5 h)
    rows = indexed_rows(recorder, "cam")
    assert abs(rows[0].start_us - began_us) < 30_000_000
    day = us_to_datetime(rows[0].start_us)
    assert rows[0].path.startswith(f"cam/{day.year:04d}/{day.month:02d}/{day.day:02d}/")
    end_us = wall_now_us() + 60_000_000
    in_z = recordings(
        recorder, "cam", format_rfc3339(began_us - MINUTE_US), format_rfc3339(end_us)
    )
    assert all(s["start"].endswith("Z") for s in in_z["segments"])
    shifted = recordings(  # the same instants written with -05:00 and +05:30 offsets
        recorder,
        "cam",
        us_to_datetime(began_us - MINUTE_US).astimezone(ZoneInfo(DST_ZONE)).isoformat(),
        us_to_datetime(end_us).astimezone(ZoneInfo("Asia/Kolkata")).isoformat(),
    )
    assert [s["id"] for s in shifted["segments"]] == [s["id"] for s in in_z["segments"]]

    # the server clock steps back 90 s, then forward 90 s
    offset_file.write_text(str(-90 * 1_000_000_000))
    time.sleep(15)
    offset_file.write_text("0")
    time.sleep(15)
    recorder.wait_for(lambda: state(recorder, "cam") == "recording", 30, "recording")
    count = len(indexed_rows(recorder, "cam"))
    recorder.wait_for(
        lambda: len(indexed_rows(recorder, "cam")) >= count + 2,
        30,
        "recording after the steps",
    )
    assert recorder.process is not None and recorder.process.poll() is None
    rows = assert_rows_match_files(recorder, "cam")  # no overlap, no negative segment
    for row in rows[:-1]:
        assert row.end_us - row.start_us <= 4 * 1_000_000 + 3_000_000, row
    log = recorder.log_text()
    assert "clock-step" in log or "clock step" in log, "the clock step went unnoticed"
