import dataclasses
from pathlib import Path

from nvr.index.db import open_index
from nvr.index.repo import Index
from nvr.retention.sweeper import sweep
from tests.index.support import CAMERAS, GROUPS, SECOND_US, T0_US, segment_event

DAY_US = 86_400 * SECOND_US


def _index_with_files(tmp_path: Path) -> Index:
    index = open_index(f"sqlite:///{tmp_path / 'index.db'}")
    index.sync_groups_and_cameras(GROUPS, CAMERAS)
    for camera_id in ("cam1", "cam2"):
        for seq in range(3):
            event = segment_event(camera_id, f"run-{camera_id}", seq, seq * 60, sha=str(seq))
            path = tmp_path / "segments" / event.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * 10)
            index.add_segment(dataclasses.replace(event, bytes=10))
    return index


def test_sweep_general_deleted_after_30_days_key_area_kept(tmp_path: Path) -> None:
    index = _index_with_files(tmp_path)
    root = tmp_path / "segments"
    just_after_30_days = T0_US + 3 * 60 * SECOND_US + 30 * DAY_US + 1

    result = sweep(
        index, root, index.group_retention_days(), lambda: just_after_30_days
    )

    assert result.segments == 3
    assert index.segments_overlapping("cam1", T0_US, T0_US + DAY_US) == []
    assert len(index.segments_overlapping("cam2", T0_US, T0_US + DAY_US)) == 3
    assert not list((root / "cam1").rglob("*.mp4"))
    assert len(list((root / "cam2").rglob("*.mp4"))) == 3
    assert {d.reason for d in index.deletions("cam1")} == {"retention"}


def test_sweep_one_second_before_retention_deletes_nothing(tmp_path: Path) -> None:
    index = _index_with_files(tmp_path)
    first_end_us = T0_US + 60 * SECOND_US
    before = first_end_us + 30 * DAY_US - SECOND_US

    result = sweep(
        index, tmp_path / "segments", index.group_retention_days(), lambda: before
    )

    assert result.segments == 0
    assert len(index.segments_overlapping("cam1", T0_US, T0_US + DAY_US)) == 3


def test_sweep_key_area_deleted_after_90_days(tmp_path: Path) -> None:
    index = _index_with_files(tmp_path)
    after_90_days = T0_US + 3 * 60 * SECOND_US + 90 * DAY_US + 1

    result = sweep(
        index,
        tmp_path / "segments",
        index.group_retention_days(),
        lambda: after_90_days,
    )

    assert result.segments == 6
    assert result.bytes == 60
