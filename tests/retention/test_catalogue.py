"""The index side of batched deletion on real SQLite and PostgreSQL: the sliced
selection returns what one sorted query would, a batch mark honours holds, and a batch
removal logs and audits each segment in order."""

import json
from pathlib import Path

import pytest

from nvr.config import CameraConfig
from nvr.evidence.chain import audit_chain_breaks, walk_segment_chain
from nvr.index.evidence import (
    audit_entries,
    iter_audit_log,
    iter_chain_records,
    place_hold,
)
from nvr.retention import catalogue
from tests.index.support import SECOND_US, T0_US

from .support import CAMERAS, GROUPS, Store, make_store

HOUR_S = 3600
CUTOFF_US = T0_US + 30 * HOUR_S * SECOND_US


@pytest.fixture
def store(tmp_path: Path, db_url: str) -> Store:
    """Three general cameras of very different density, one held and one marked
    segment, and a key-area camera."""
    opened = make_store(tmp_path, url=db_url)
    more = (
        CameraConfig(id="cam3", url="rtsp://127.0.0.1/c", group="general"),
        CameraConfig(id="cam4", url="rtsp://127.0.0.1/d", group="general"),
    )
    opened.index.sync_groups_and_cameras(GROUPS, CAMERAS + more)
    for seq in range(60):  # 10 s segments for 10 minutes
        opened.add("cam1", seq, start_s=10 * seq, duration_s=10)
    for seq in range(20):  # one minute every two hours, for 40 hours
        opened.add("cam3", seq, start_s=2 * HOUR_S * seq)
    for seq in range(20):  # back to back from hour 5
        opened.add("cam4", seq, start_s=5 * HOUR_S + 60 * seq)
    for seq in range(5):
        opened.add("cam2", seq)
    place_hold(
        opened.index,
        "cam1",
        T0_US + 95 * SECOND_US,
        T0_US + 105 * SECOND_US,
        "C",
        "x",
        "o",
    )
    marked_id = opened.ids[("cam3", 1)]
    assert catalogue.mark_deleting(opened.index, marked_id, "retention", T0_US)
    return opened


def _expected(store: Store, include_held: bool) -> list[int]:
    """The due segments of group general by brute force, oldest end first."""
    rows = [
        row
        for camera in ("cam1", "cam3", "cam4")
        for row in store.index.segments_overlapping(camera, 0, CUTOFF_US)
        if row.end_us < CUTOFF_US
    ]
    marked = {c.segment_id for c in catalogue.marked(store.index, 100)}
    kept = [
        row
        for row in rows
        if row.id not in marked and (include_held or not store.index.held(row.id))
    ]
    return [row.id for row in sorted(kept, key=lambda r: (r.end_us, r.id))]


@pytest.mark.parametrize("include_held", [False, True])
def test_due_for_retention_pages_equal_one_sorted_query(
    store: Store, include_held: bool
) -> None:
    expected = _expected(store, include_held)
    # cam1's 60, cam3's 15 that end before hour 30 but the marked one, cam4's 20; the
    # hold covers two of cam1's
    assert len(expected) == 60 + 15 - 1 + 20 - (0 if include_held else 2)

    for limit in (1, 7, 80, 1000):
        page = catalogue.due_for_retention(
            store.index, "general", CUTOFF_US, limit, include_held=include_held
        )
        assert [c.segment_id for c in page] == expected[:limit]

    paged: list[int] = []
    after: tuple[int, int] | None = None
    while True:
        page = catalogue.due_for_retention(
            store.index, "general", CUTOFF_US, 7, include_held=include_held, after=after
        )
        paged.extend(c.segment_id for c in page)
        if len(page) < 7:
            break
        after = (page[-1].end_us, page[-1].segment_id)
    assert paged == expected


def test_due_for_retention_nothing_due_or_unknown_group_empty(store: Store) -> None:
    assert catalogue.due_for_retention(store.index, "general", T0_US, 10) == []
    assert catalogue.due_for_retention(store.index, "no-such", CUTOFF_US, 10) == []


def test_mark_batch_marks_unheld_lists_held_skips_gone(store: Store) -> None:
    held_id = store.ids[("cam1", 9)]  # [90 s, 100 s): under the hold
    free = [store.ids[("cam1", 0)], store.ids[("cam1", 1)]]
    already = store.ids[("cam3", 1)]

    marking = catalogue.mark_batch(
        store.index, [free[0], held_id, 10**9, free[1], already], "retention", T0_US + 5
    )

    assert [c.segment_id for c in marking.marked] == [free[0], free[1], already]
    assert marking.held == [held_id]
    pending = {c.segment_id: c for c in catalogue.marked(store.index, 10)}
    assert set(pending) == {*free, already}
    assert pending[free[0]].deleting_us == T0_US + 5
    assert pending[already].deleting_us == T0_US  # an earlier mark is kept


def test_finish_batch_logs_and_audits_each_in_order_chain_intact(store: Store) -> None:
    ids = [store.ids[("cam4", 2)], store.ids[("cam1", 0)], store.ids[("cam4", 0)]]
    catalogue.mark_batch(store.index, ids, "retention", T0_US)
    unmarked = store.ids[("cam1", 1)]

    rows = catalogue.finish_batch(store.index, [*ids, unmarked], "retention", T0_US + 9)

    assert [row.segment_id for row in rows] == ids
    assert all(
        row.deleted_us == T0_US + 9 and row.reason == "retention" for row in rows
    )
    audited = audit_entries(store.index, action="deletion")
    assert [json.loads(entry.details)["segment_id"] for entry in audited] == ids
    assert [entry.subject for entry in audited] == [row.path for row in rows]
    assert list(audit_chain_breaks(iter_audit_log(store.index))) == []
    for camera in ("cam1", "cam4"):
        links = walk_segment_chain(iter_chain_records(store.index, camera))
        assert all(link.intact for link in links)
    assert store.index.segment_by_id(unmarked) is not None
    # a retry finds nothing left to finish
    assert catalogue.finish_batch(store.index, ids, "retention", T0_US + 10) == []
    assert len(audit_entries(store.index, action="deletion")) == 3
