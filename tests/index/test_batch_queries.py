"""The batch forms of in-transaction helpers, on real SQLite and PostgreSQL: a batch of
audit rows chains exactly as rows appended one by one, and pruning gaps for several
cameras at once leaves what pruning camera by camera leaves."""

from nvr.evidence.chain import GENESIS, audit_chain_breaks
from nvr.index import Index
from nvr.index.evidence import iter_audit_log, record_audit
from nvr.index.evidence_queries import append_audit, append_audits
from nvr.index.models import Segment
from nvr.index.queries import (
    prune_gaps_before_recording,
    prune_gaps_before_recordings,
)

from .support import CLOCK_US, T0_US, segment_event


def test_append_audits_batch_chains_like_single_appends_in_order(index: Index) -> None:
    record_audit(index, "olive", "hold-place", "hold 1", {"case_id": "C-1"}, "cam1")
    items = [
        (f"cam1/seg-{n}.mp4", {"segment_id": n, "bytes": 10 * n}, "cam1")
        for n in range(5)
    ]
    with index.write() as session:
        append_audits(session, CLOCK_US, "retention", "deletion", items)
    with index.write() as session:
        single = append_audit(session, CLOCK_US, "retention", "deletion", "last", {})

    rows = list(iter_audit_log(index))

    assert list(audit_chain_breaks(rows)) == []
    assert [row.subject for row in rows[1:6]] == [item[0] for item in items]
    assert [row.id for row in rows] == sorted(row.id for row in rows)
    assert rows[0].prev_hash == GENESIS
    assert rows[-1].id == single.id and rows[-1].prev_hash == rows[-2].hash


def test_append_audits_empty_batch_writes_nothing(index: Index) -> None:
    with index.write() as session:
        append_audits(session, CLOCK_US, "retention", "deletion", [])

    assert list(iter_audit_log(index)) == []


def _gapped_history(index: Index, camera_id: str) -> list[int]:
    """Three runs of one segment each, 40 s apart: two gaps between them."""
    return [
        index.add_segment(
            segment_event(camera_id, f"run-{camera_id}-{n}", n, start_s=100 * n)
        )
        for n in range(3)
    ]


def _gaps(index: Index, camera_id: str) -> list[tuple[int, int]]:
    return [
        (gap.start_us, gap.end_us)
        for gap in index.gaps_overlapping(camera_id, T0_US, T0_US + 10**12)
    ]


def _delete_rows(index: Index, segment_ids: list[int]) -> None:
    with index.write() as session:
        for segment_id in segment_ids:
            session.delete(session.get(Segment, segment_id))


def test_prune_gaps_for_several_cameras_matches_camera_by_camera(index: Index) -> None:
    one = _gapped_history(index, "cam1")
    two = _gapped_history(index, "cam2")
    assert len(_gaps(index, "cam1")) == len(_gaps(index, "cam2")) == 2
    # cam1 loses its oldest segment, cam2 all three (no recording left at all)
    _delete_rows(index, [one[0], *two])

    with index.write() as session:
        prune_gaps_before_recordings(
            session, {"cam1": T0_US + 60_000_000, "cam2": T0_US + 260_000_000}
        )

    assert _gaps(index, "cam1") == [(T0_US + 160_000_000, T0_US + 200_000_000)]
    assert _gaps(index, "cam2") == []


def test_prune_gaps_single_camera_form_agrees_with_batch_form(index: Index) -> None:
    one = _gapped_history(index, "cam1")
    _delete_rows(index, [one[0]])

    with index.write() as session:
        prune_gaps_before_recording(session, "cam1", T0_US + 60_000_000)

    assert _gaps(index, "cam1") == [(T0_US + 160_000_000, T0_US + 200_000_000)]
