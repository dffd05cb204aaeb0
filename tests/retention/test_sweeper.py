from pathlib import Path

import pytest

from nvr.index import Index
from nvr.index.evidence import audit_entries, place_hold, release_hold
from nvr.retention.sweeper import sweep
from tests.index.support import SECOND_US, T0_US

from .support import DAY_US, Store, make_store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = make_store(tmp_path)
    for camera_id in ("cam1", "cam2"):
        for seq in range(3):
            opened.add(camera_id, seq)
    return opened


def _sweep_at(store: Store, now_us: int) -> int:
    store.clock.now_us = now_us
    return sweep(store.index, store.root, now_us=store.clock).segments


def _left(index: Index, camera_id: str) -> int:
    return len(index.segments_overlapping(camera_id, T0_US, T0_US + DAY_US))


def test_sweep_general_deleted_just_after_30_days_key_area_kept_until_90(
    store: Store,
) -> None:
    last_end_us = T0_US + 3 * 60 * SECOND_US

    assert _sweep_at(store, last_end_us + 30 * DAY_US) == 2  # the last ends exactly now
    assert _sweep_at(store, last_end_us + 30 * DAY_US + 1) == 1
    assert _left(store.index, "cam1") == 0
    assert _sweep_at(store, last_end_us + 90 * DAY_US - 1) == 2
    assert _left(store.index, "cam2") == 1
    assert _sweep_at(store, last_end_us + 90 * DAY_US + 1) == 1

    assert store.files() == set() and store.rows() == set()
    assert {d.reason for d in store.index.deletions("cam1")} == {"retention"}


def test_sweep_one_microsecond_before_retention_deletes_nothing(store: Store) -> None:
    first_end_us = T0_US + 60 * SECOND_US

    assert _sweep_at(store, first_end_us + 30 * DAY_US) == 0
    assert _left(store.index, "cam1") == 3


def test_sweep_held_segment_survives_retention_until_released(store: Store) -> None:
    held_id = store.ids[("cam1", 1)]
    hold = place_hold(
        store.index,
        "cam1",
        T0_US + 90 * SECOND_US,
        T0_US + 91 * SECOND_US,
        "CASE-7",
        "incident",
        "olive",
    )

    assert _sweep_at(store, T0_US + 200 * DAY_US) == 5
    assert [
        row.id
        for row in store.index.segments_overlapping("cam1", T0_US, T0_US + DAY_US)
    ] == [held_id]
    assert len(store.files()) == 1

    release_hold(store.index, hold.id, "olive")
    assert _sweep_at(store, T0_US + 200 * DAY_US) == 1
    assert store.files() == set()


def test_sweep_deletion_logged_with_range_bytes_reason_and_audited(
    store: Store,
) -> None:
    _sweep_at(store, T0_US + 31 * DAY_US)

    deletions = store.index.deletions("cam1")
    assert sorted((d.start_us, d.end_us, d.bytes, d.reason) for d in deletions) == [
        (T0_US + n * 60 * SECOND_US, T0_US + (n + 1) * 60 * SECOND_US, 10, "retention")
        for n in range(3)
    ]
    audit = audit_entries(store.index, action="deletion")
    assert len(audit) == 3 and {entry.actor for entry in audit} == {"retention"}


def test_sweep_max_segments_bounds_one_pass(store: Store) -> None:
    store.clock.now_us = T0_US + 200 * DAY_US

    first = sweep(store.index, store.root, now_us=store.clock, batch=2, max_segments=4)
    second = sweep(store.index, store.root, now_us=store.clock, batch=2, max_segments=4)

    assert (first.segments, second.segments) == (4, 2)
