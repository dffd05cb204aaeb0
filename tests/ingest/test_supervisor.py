"""How the supervisor spreads cameras over worker processes and indexes segments."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from nvr.config import parse_config
from nvr.index.db import open_index
from nvr.index.repo import Index
from nvr.ingest.supervisor import FUTURE_TOLERANCE_US, index_segment, plan_workers
from tests.index.support import (
    CAMERAS,
    CLOCK_US,
    GROUPS,
    SECOND_US,
    T0_US,
    segment_event,
)

BASE = """
[storage]
root = "/var/lib/nvr/segments"

[recording]
cameras_per_worker = 2
"""


def _config(*tables: str) -> str:
    return BASE + "".join(f"\n[[cameras]]\n{table}\n" for table in tables)


def test_plan_workers_cameras_split_by_client_rtsps_goes_to_ffmpeg() -> None:
    config = parse_config(
        _config(
            'id = "a"\nurl = "rtsp://192.0.2.1/s"',
            'id = "b"\nurl = "rtsps://192.0.2.2/s"',
            'id = "c"\nurl = "rtsp://192.0.2.3/s"\nrtsp_client = "ffmpeg"',
            'id = "d"\nurl = "rtsp://192.0.2.4/s"',
        )
    )

    workers = plan_workers(config, config.cameras)

    by_client = {w.client: sorted(w.camera_ids) for w in workers}
    assert by_client == {"native": ["a", "d"], "ffmpeg": ["b", "c"]}


def test_plan_workers_five_cameras_two_per_worker_three_even_shards() -> None:
    config = parse_config(
        _config(*(f'id = "c{i}"\nurl = "rtsp://192.0.2.{i}/s"' for i in range(5)))
    )

    workers = plan_workers(config, config.cameras)

    assert sorted(len(w.camera_ids) for w in workers) == [1, 2, 2]
    assert sorted(c for w in workers for c in w.camera_ids) == [
        f"c{i}" for i in range(5)
    ]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    opened = open_index(f"sqlite:///{tmp_path / 'index.db'}", clock=lambda: CLOCK_US)
    opened.sync_groups_and_cameras(GROUPS, CAMERAS)
    yield opened
    opened.close()


def test_index_segment_overlapping_predecessor_moved_later(index: Index) -> None:
    index_segment(index, segment_event(seq=0, start_s=0, duration_s=10), CLOCK_US)
    early = segment_event(run_id="run-b", start_s=7, duration_s=10, sha="b")

    _, shift_us = index_segment(index, early, CLOCK_US)

    (_, moved) = index.segments_overlapping("cam1", T0_US, T0_US + 60 * SECOND_US)
    assert shift_us == 3 * SECOND_US
    assert (moved.start_us, moved.end_us) == (
        T0_US + 10 * SECOND_US,
        T0_US + 20 * SECOND_US,
    )


def test_index_segment_ending_in_the_future_cut_back_to_now(index: Index) -> None:
    now_us = T0_US + 12 * SECOND_US  # a fast camera clock: 60 s of media in 12 s
    ahead = segment_event(start_s=0, duration_s=60)

    index_segment(index, ahead, now_us)

    (row,) = index.segments_overlapping("cam1", T0_US, T0_US + 120 * SECOND_US)
    assert row.start_us == T0_US
    assert row.end_us == now_us + FUTURE_TOLERANCE_US
