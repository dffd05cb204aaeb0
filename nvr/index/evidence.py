"""Catalogue operations for evidence: holds, export jobs, the audit log and chain records.

Functions take the ``Index`` and, like its methods, block: call them through the index
thread. Every change that the audit log must show is written in the same transaction
as its audit row.
"""

import heapq
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from nvr.errors import NotFound, StorageError
from nvr.evidence.chain import AuditRecord, ChainRecord
from nvr.index.evidence_queries import append_audit
from nvr.index.models import AuditEntry, Camera, Deletion, Export, Hold, Segment
from nvr.index.repo import Index

UNFINISHED_STATES = ("queued", "running")


@dataclass(frozen=True)
class HoldRow:
    id: int
    camera_id: str
    start_us: int
    end_us: int
    case_id: str
    reason: str
    created_by: str
    created_us: int
    released_by: str | None
    released_us: int | None


@dataclass(frozen=True)
class ExportRow:
    id: str
    camera_id: str
    start_us: int
    end_us: int
    case_id: str
    reason: str
    actor: str
    state: str
    error: str | None
    hold_id: int | None
    package_bytes: int | None
    package_sha256: str | None
    created_us: int
    finished_us: int | None


def _hold_row(hold: Hold) -> HoldRow:
    return HoldRow(
        hold.id,
        hold.camera_id,
        hold.start_us,
        hold.end_us,
        hold.case_id,
        hold.reason,
        hold.created_by,
        hold.created_us,
        hold.released_by,
        hold.released_us,
    )


def _export_row(export: Export) -> ExportRow:
    return ExportRow(
        export.id,
        export.camera_id,
        export.start_us,
        export.end_us,
        export.case_id,
        export.reason,
        export.actor,
        export.state,
        export.error,
        export.hold_id,
        export.package_bytes,
        export.package_sha256,
        export.created_us,
        export.finished_us,
    )


def _audit_record(entry: AuditEntry) -> AuditRecord:
    return AuditRecord(
        entry.id,
        entry.at_us,
        entry.actor,
        entry.action,
        entry.camera_id,
        entry.subject,
        entry.details,
        entry.prev_hash,
        entry.hash,
    )


# holds


def place_hold(
    index: Index,
    camera_id: str,
    start_us: int,
    end_us: int,
    case_id: str,
    reason: str,
    actor: str,
) -> HoldRow:
    """Holds the camera's ``[start_us, end_us)`` from retention under ``case_id``."""
    with index.write() as session:
        hold = _add_hold(
            session, camera_id, start_us, end_us, case_id, reason, actor, index.clock()
        )
        return _hold_row(hold)


def _add_hold(
    session: Any,
    camera_id: str,
    start_us: int,
    end_us: int,
    case_id: str,
    reason: str,
    actor: str,
    now_us: int,
) -> Hold:
    if session.get(Camera, camera_id) is None:
        raise NotFound(f"unknown camera {camera_id!r}")
    hold = Hold(
        camera_id=camera_id,
        start_us=start_us,
        end_us=end_us,
        case_id=case_id,
        reason=reason,
        created_by=actor,
        created_us=now_us,
    )
    session.add(hold)
    session.flush()
    append_audit(
        session,
        now_us,
        actor,
        "hold-place",
        f"hold {hold.id}",
        {"case_id": case_id, "start_us": start_us, "end_us": end_us, "reason": reason},
        camera_id=camera_id,
    )
    return hold


def hold_by_id(index: Index, hold_id: int) -> HoldRow | None:
    with index.read() as session:
        hold = session.get(Hold, hold_id)
        return None if hold is None else _hold_row(hold)


def release_hold(index: Index, hold_id: int, actor: str) -> HoldRow:
    """Releases a hold (its segments fall back under retention); NotFound if unknown."""
    with index.write() as session:
        hold = session.get(Hold, hold_id, with_for_update=True)
        if hold is None:
            raise NotFound(f"unknown hold {hold_id}")
        if hold.released_us is None:
            now_us = index.clock()
            hold.released_us = now_us
            hold.released_by = actor
            append_audit(
                session,
                now_us,
                actor,
                "hold-release",
                f"hold {hold.id}",
                {"case_id": hold.case_id},
                camera_id=hold.camera_id,
            )
        return _hold_row(hold)


def list_holds(
    index: Index,
    camera_id: str | None = None,
    case_id: str | None = None,
    include_released: bool = False,
) -> list[HoldRow]:
    statement = select(Hold).order_by(Hold.id)
    if camera_id is not None:
        statement = statement.where(Hold.camera_id == camera_id)
    if case_id is not None:
        statement = statement.where(Hold.case_id == case_id)
    if not include_released:
        statement = statement.where(Hold.released_us.is_(None))
    with index.read() as session:
        return [_hold_row(hold) for hold in session.scalars(statement)]


# export jobs


def create_export(
    index: Index,
    export_id: str,
    camera_id: str,
    start_us: int,
    end_us: int,
    case_id: str,
    reason: str,
    actor: str,
) -> ExportRow:
    """Records a queued export, the hold on its range and the audit row, together."""
    with index.write() as session:
        now_us = index.clock()
        hold = _add_hold(
            session,
            camera_id,
            start_us,
            end_us,
            case_id,
            f"export {export_id}: {reason}",
            actor,
            now_us,
        )
        export = Export(
            id=export_id,
            camera_id=camera_id,
            start_us=start_us,
            end_us=end_us,
            case_id=case_id,
            reason=reason,
            actor=actor,
            state="queued",
            hold_id=hold.id,
            created_us=now_us,
        )
        session.add(export)
        append_audit(
            session,
            now_us,
            actor,
            "export",
            f"export {export_id}",
            {
                "case_id": case_id,
                "reason": reason,
                "start_us": start_us,
                "end_us": end_us,
                "hold_id": hold.id,
            },
            camera_id=camera_id,
        )
        session.flush()
        return _export_row(export)


def set_export_state(
    index: Index,
    export_id: str,
    state: str,
    *,
    error: str | None = None,
    package_bytes: int | None = None,
    package_sha256: str | None = None,
) -> None:
    """Moves an export to ``state``; done and failed also stamp the finish time."""
    values: dict[str, Any] = {"state": state, "error": error}
    if state in ("done", "failed"):
        values["finished_us"] = index.clock()
    if package_bytes is not None:
        values.update(package_bytes=package_bytes, package_sha256=package_sha256)
    with index.write() as session:
        result = session.execute(
            update(Export).where(Export.id == export_id).values(values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StorageError(f"export {export_id} is not in the index")


def export_by_id(index: Index, export_id: str) -> ExportRow | None:
    with index.read() as session:
        export = session.get(Export, export_id)
        return None if export is None else _export_row(export)


def fail_unfinished_exports(index: Index, error: str) -> int:
    """Marks exports left queued or running by a previous process as failed."""
    with index.write() as session:
        result = session.execute(
            update(Export)
            .where(Export.state.in_(UNFINISHED_STATES))
            .values(state="failed", error=error, finished_us=index.clock())
        )
        count: int = result.rowcount  # type: ignore[attr-defined]
        return count


def segment_chain_hashes(
    index: Index, segment_ids: Sequence[int]
) -> dict[int, str | None]:
    with index.read() as session:
        rows = session.execute(
            select(Segment.id, Segment.chain_hash).where(Segment.id.in_(segment_ids))
        ).all()
        return {segment_id: link for segment_id, link in rows}


# audit log


def record_audit(
    index: Index,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    camera_id: str | None = None,
) -> AuditRecord:
    """Appends one audit row in its own transaction."""
    with index.write() as session:
        entry = append_audit(
            session, index.clock(), actor, action, subject, details, camera_id
        )
        return _audit_record(entry)


def audit_entries(
    index: Index,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    cameras: Collection[str] | None = None,
    limit: int = 1000,
) -> list[AuditRecord]:
    """Audit rows matching every given filter, oldest first, at most ``limit``.

    With ``cameras``, rows about another camera are left out (rows about none stay).
    """
    statement = select(AuditEntry).order_by(AuditEntry.id).limit(limit)
    if cameras is not None:
        statement = statement.where(
            or_(AuditEntry.camera_id.is_(None), AuditEntry.camera_id.in_(cameras))
        )
    if start_us is not None:
        statement = statement.where(AuditEntry.at_us >= start_us)
    if end_us is not None:
        statement = statement.where(AuditEntry.at_us < end_us)
    if actor is not None:
        statement = statement.where(AuditEntry.actor == actor)
    if action is not None:
        statement = statement.where(AuditEntry.action == action)
    with index.read() as session:
        return [_audit_record(entry) for entry in session.scalars(statement)]


def iter_audit_log(index: Index) -> Iterator[AuditRecord]:
    """Every audit row in id order, streamed."""
    with index.read() as session:
        statement = (
            select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=1000)
        )
        for entry in session.scalars(statement):
            yield _audit_record(entry)


# segment chain


def iter_chain_records(index: Index, camera_id: str) -> Iterator[ChainRecord]:
    """The camera's chain in segment id order: live records and logged deletions merged.

    Deletions logged before the chain existed (no link) are left out, as revision 0003
    chained only the segments still present.
    """
    with index.read() as session:
        live = session.scalars(
            select(Segment)
            .where(Segment.camera_id == camera_id)
            .order_by(Segment.id)
            .execution_options(yield_per=1000)
        )
        gone = session.scalars(
            select(Deletion)
            .where(Deletion.camera_id == camera_id, Deletion.chain_hash.is_not(None))
            .order_by(Deletion.segment_id)
            .execution_options(yield_per=1000)
        )
        live_records = (
            ChainRecord(
                s.id,
                s.camera_id,
                s.sha256,
                s.start_us,
                s.end_us,
                s.bytes,
                s.chain_hash,
                s.path,
            )
            for s in live
        )
        gone_records = (
            ChainRecord(
                d.segment_id,
                d.camera_id,
                d.sha256 or "",
                d.start_us,
                d.end_us,
                d.bytes,
                d.chain_hash,
                d.path,
                d.deleted_us,
                d.reason,
            )
            for d in gone
        )
        yield from heapq.merge(live_records, gone_records, key=lambda r: r.segment_id)
