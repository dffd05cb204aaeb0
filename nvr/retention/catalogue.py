"""The index side of deleting segments: choosing them, marking them, logging them gone.

Every function is one short blocking transaction: call it through the server's index
thread. The deletion procedure that strings them together is in ``nvr.retention.deleter``
and docs/retention.md.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from nvr.index.evidence_queries import AuditItem, append_audits, segment_is_held
from nvr.index.models import Camera, Deletion, Group, Hold, Replica, Segment
from nvr.index.queries import prune_gaps_before_recordings
from nvr.index.repo import Index
from nvr.index.rows import DeletionRow, deletion_row

US_PER_DAY = 86_400 * 1_000_000
EVICTED = "evicted"
# The first slice of end times a retention selection reads (see due_for_retention); each
# slice that comes up short is followed by one four times longer.
FIRST_SLICE_US = 60 * 1_000_000
SLICE_GROWTH = 4


@dataclass(frozen=True)
class Candidate:
    """A segment that a deletion may remove, with where its bytes live."""

    segment_id: int
    camera_id: str
    group: str
    priority: int
    path: str  # relative to the storage root
    start_us: int
    end_us: int
    bytes: int
    replica_state: str | None  # None: never queued for S3 (local only)
    object_key: str | None
    version_id: str | None
    upload_id: str | None
    held: bool
    deleting_reason: str | None = None
    checksum: str | None = None  # S3's checksum recorded when the object was verified
    deleting_us: int | None = None  # when its deletion began (None: not marked)

    @property
    def tier(self) -> str:
        """``local``, ``local+s3`` or ``s3``, as the recordings API names it."""
        if self.replica_state == EVICTED:
            return "s3"
        if self.replica_state == "replicated":
            return "local+s3"
        return "local"

    @property
    def has_local_file(self) -> bool:
        return self.replica_state != EVICTED


_Query = Select[*tuple[Any, ...]]
_Row = Row[*tuple[Any, ...]]

# Note: plain columns, not ORM entities: a segment row also carries its keyframe table
# (about 1 KB), which no deletion needs, and building entities cost more than the query.
_CANDIDATE_COLUMNS = (
    Segment.id,
    Segment.camera_id,
    Group.name,
    Group.priority,
    Segment.path,
    Segment.start_us,
    Segment.end_us,
    Segment.bytes,
    Replica.state,
    Replica.object_key,
    Replica.version_id,
    Replica.upload_id,
    segment_is_held().label("held"),
    Segment.deleting_reason,
    Replica.checksum,
    Segment.deleting_us,
)


def _candidates() -> _Query:
    return (
        select(*_CANDIDATE_COLUMNS)
        .join(Camera, Camera.id == Segment.camera_id)
        .join(Group, Group.name == Camera.group_name)
        .outerjoin(Replica, Replica.segment_id == Segment.id)
    )


def _candidate(row: _Row) -> Candidate:
    (
        segment_id,
        camera_id,
        group,
        priority,
        path,
        start_us,
        end_us,
        size,
        replica_state,
        object_key,
        version_id,
        upload_id,
        held,
        deleting_reason,
        checksum,
        deleting_us,
    ) = row
    return Candidate(
        segment_id=segment_id,
        camera_id=camera_id,
        group=group,
        priority=priority or 0,
        path=path,
        start_us=start_us,
        end_us=end_us,
        bytes=size,
        replica_state=replica_state,
        object_key=object_key,
        version_id=version_id,
        upload_id=upload_id,
        held=bool(held),
        deleting_reason=deleting_reason,
        checksum=checksum,
        deleting_us=deleting_us,
    )


def _run(index: Index, statement: _Query) -> list[Candidate]:
    with index.read() as session:
        return [_candidate(row) for row in session.execute(statement).all()]


def due_for_retention(
    index: Index,
    group: str,
    end_before_us: int,
    limit: int,
    *,
    include_held: bool = False,
    after: tuple[int, int] | None = None,
) -> list[Candidate]:
    """Unmarked segments of ``group`` ending before ``end_before_us``, oldest end first.

    Held segments are left out unless ``include_held`` (the plan lists them as spared).
    ``after`` is the (end_us, id) of the last row of the previous page.
    """
    # Note: "oldest end first" over a group is a sort across its cameras. Sorting every
    # due row for each page cost O(backlog) per page (0.5 s for 200 000 rows on SQLite),
    # so pages are read in slices of end time, each through the (camera_id, end_us)
    # index: a slice reads only its own rows, and one that comes up short is followed by
    # a longer one. The rows and their order are those of one sorted query.
    with index.read() as session:
        low_us = after[0] if after is not None else _oldest_end(session, group)
        if low_us is None:
            return []
        found: list[Candidate] = []
        span_us = FIRST_SLICE_US
        while len(found) < limit and low_us < end_before_us:
            high_us = min(end_before_us, low_us + span_us)
            statement = _candidates().where(
                Group.name == group,
                Segment.end_us >= low_us,
                Segment.end_us < high_us,
                Segment.deleting_us.is_(None),
            )
            if not include_held:
                statement = statement.where(~segment_is_held())
            if after is not None:
                statement = statement.where(
                    tuple_(Segment.end_us, Segment.id) > tuple_(*after)
                )
            page = statement.order_by(Segment.end_us, Segment.id).limit(
                limit - len(found)
            )
            found.extend(_candidate(row) for row in session.execute(page).all())
            low_us = high_us
            span_us *= SLICE_GROWTH
        return found


def _oldest_end(session: Session, group: str) -> int | None:
    """The earliest segment end of the group's cameras (marked and held included)."""
    first_end = (
        select(func.min(Segment.end_us))
        .where(Segment.camera_id == Camera.id)
        .scalar_subquery()
    )
    earliest = session.scalar(
        select(func.min(first_end)).where(Camera.group_name == group)
    )
    return None if earliest is None else int(earliest)


def _unheld_unmarked() -> ColumnElement[bool]:
    return and_(Segment.deleting_us.is_(None), ~segment_is_held())


def replicated_local_copies(index: Index, limit: int) -> list[Candidate]:
    """Unheld segments verified in S3 whose local copy is still here, oldest end first."""
    statement = _candidates().where(_unheld_unmarked(), Replica.state == "replicated")
    return _run(index, statement.order_by(Segment.end_us, Segment.id).limit(limit))


def pressure_victims(index: Index, limit: int) -> list[Candidate]:
    """Unheld segments with a local file, lowest-priority group first, then oldest end.

    Ties between groups of equal priority go to the shorter retention, then the name.
    """
    statement = (
        _candidates()
        .where(
            _unheld_unmarked(), (Replica.state.is_(None)) | (Replica.state != EVICTED)
        )
        .order_by(
            func.coalesce(Group.priority, 0),
            Group.retention_days,
            Group.name,
            Segment.end_us,
            Segment.id,
        )
    )
    return _run(index, statement.limit(limit))


def marked(
    index: Index, limit: int, after: tuple[int, int] | None = None
) -> list[Candidate]:
    """Segments whose deletion began but did not finish, oldest mark first.

    ``after`` is the (deleting_us, id) of the last row of the previous page.
    """
    statement = _candidates().where(Segment.deleting_us.is_not(None))
    if after is not None:
        statement = statement.where(
            tuple_(Segment.deleting_us, Segment.id) > tuple_(*after)
        )
    return _run(index, statement.order_by(Segment.deleting_us, Segment.id).limit(limit))


@dataclass(frozen=True)
class Marking:
    """What step 1 did to a batch: the segments marked, and those a hold kept."""

    marked: list[Candidate]
    held: list[int]


def mark_batch(
    index: Index, segment_ids: Sequence[int], reason: str, now_us: int
) -> Marking:
    """Step 1 for a batch, in one transaction: marks each segment unless it is held.

    The segment rows are locked, every hold is checked and the unheld ones are marked
    together, so a hold committed before this transaction saves its segments. A segment
    an earlier attempt marked already is returned as marked; one deleted meanwhile is
    in neither list.
    """
    if not segment_ids:
        return Marking([], [])
    with index.write() as session:
        rows = session.execute(
            _candidates().where(Segment.id.in_(segment_ids)).with_for_update(of=Segment)
        ).all()
        by_id = {candidate.segment_id: candidate for candidate in map(_candidate, rows)}
        marked: list[Candidate] = []
        held: list[int] = []
        fresh: list[int] = []
        for segment_id in segment_ids:
            candidate = by_id.get(segment_id)
            if candidate is None:
                continue
            if candidate.deleting_us is not None:
                marked.append(candidate)
            elif candidate.held:
                held.append(segment_id)
            else:
                fresh.append(segment_id)
                marked.append(
                    replace(candidate, deleting_reason=reason, deleting_us=now_us)
                )
        if fresh:
            session.execute(
                update(Segment)
                .where(Segment.id.in_(fresh))
                .values(deleting_us=now_us, deleting_reason=reason)
                .execution_options(synchronize_session=False)
            )
        return Marking(marked, held)


def mark_deleting(
    index: Index, segment_id: int, reason: str, now_us: int
) -> Candidate | None:
    """Step 1 for one segment: ``mark_batch`` of one.

    Returns the marked segment (also when an earlier attempt marked it already), or
    None: the segment was deleted meanwhile, or a hold now covers it.
    """
    marking = mark_batch(index, [segment_id], reason, now_us)
    return marking.marked[0] if marking.marked else None


def unmark(index: Index, segment_ids: Iterable[int]) -> None:
    """Withdraws marks whose deletion had not touched any byte yet (a hold came first)."""
    with index.write() as session:
        for segment_id in segment_ids:
            segment = session.get(Segment, segment_id)
            if segment is not None:
                segment.deleting_us = None
                segment.deleting_reason = None


def finish_batch(
    index: Index,
    segment_ids: Sequence[int],
    actor: str,
    now_us: int,
    before_commit: Callable[[], None] | None = None,
) -> list[DeletionRow]:
    """Step 3 for a batch, in one transaction: for each marked segment, in the given
    order, the ``deletions`` row and the ``deletion`` audit row; then the segment rows
    go (their ``replicas`` rows cascade) and each camera's gaps before its remaining
    recordings are pruned.

    Called only once the files and objects are gone, so the hold check was done at the
    mark. A segment already gone (a retry) or never marked is skipped. ``before_commit``
    (crash tests) runs once every row is written, inside the transaction.
    """
    if not segment_ids:
        return []
    with index.write() as session:
        found = session.execute(
            select(*_LOGGED_COLUMNS)
            .where(Segment.id.in_(segment_ids), Segment.deleting_us.is_not(None))
            .with_for_update()
        ).all()
        by_id = {row.id: row for row in found}
        segments = [by_id[i] for i in dict.fromkeys(segment_ids) if i in by_id]
        if not segments:
            return []
        logged = [_deletion_values(segment, now_us) for segment in segments]
        ids = session.scalars(
            insert(Deletion).returning(Deletion.id, sort_by_parameter_order=True),
            logged,
        ).all()
        append_audits(
            session, now_us, actor, "deletion", [_audit_item(s) for s in segments]
        )
        session.execute(
            delete(Segment)
            .where(Segment.id.in_([segment.id for segment in segments]))
            .execution_options(synchronize_session=False)
        )
        last_end_us: dict[str, int] = {}
        for segment in segments:
            previous = last_end_us.get(segment.camera_id, segment.end_us)
            last_end_us[segment.camera_id] = max(previous, segment.end_us)
        prune_gaps_before_recordings(session, last_end_us)
        if before_commit is not None:
            before_commit()
        return [
            DeletionRow(
                id=deletion_id,
                camera_id=values["camera_id"],
                segment_id=values["segment_id"],
                path=values["path"],
                start_us=values["start_us"],
                end_us=values["end_us"],
                bytes=values["bytes"],
                reason=values["reason"],
                deleted_us=now_us,
            )
            for deletion_id, values in zip(ids, logged, strict=True)
        ]


def finish_deletion(
    index: Index, segment_id: int, actor: str, now_us: int
) -> DeletionRow | None:
    """Step 3 for one segment: ``finish_batch`` of one.

    Returns None when the row is already gone (a retry) or was never marked.
    """
    rows = finish_batch(index, [segment_id], actor, now_us)
    return rows[0] if rows else None


# What a deletion copies from the segment row into the log and the audit row.
_LOGGED_COLUMNS = (
    Segment.id,
    Segment.camera_id,
    Segment.path,
    Segment.start_us,
    Segment.end_us,
    Segment.bytes,
    Segment.sha256,
    Segment.chain_hash,
    Segment.deleting_reason,
)


def _deletion_values(segment: _Row, now_us: int) -> dict[str, Any]:
    return {
        "camera_id": segment.camera_id,
        "segment_id": segment.id,
        "path": segment.path,
        "start_us": segment.start_us,
        "end_us": segment.end_us,
        "bytes": segment.bytes,
        "reason": segment.deleting_reason or "retention",
        "deleted_us": now_us,
        "sha256": segment.sha256,
        "chain_hash": segment.chain_hash,
    }


def _audit_item(segment: _Row) -> AuditItem:
    details: dict[str, Any] = {
        "segment_id": segment.id,
        "reason": segment.deleting_reason or "retention",
        "bytes": segment.bytes,
        "sha256": segment.sha256,
        "start_us": segment.start_us,
        "end_us": segment.end_us,
    }
    return segment.path, details, segment.camera_id


def deletion_log(
    index: Index, limit: int = 1000, reason: str | None = None
) -> list[DeletionRow]:
    """The newest deletions of every camera, newest first."""
    statement = select(Deletion).order_by(Deletion.id.desc()).limit(limit)
    if reason is not None:
        statement = statement.where(Deletion.reason == reason)
    with index.read() as session:
        return [deletion_row(d) for d in session.scalars(statement)]


def holds_covering(
    index: Index, camera_id: str, start_us: int, end_us: int
) -> list[tuple[int, str]]:
    """(hold id, case id) of the unreleased holds overlapping the camera's range."""
    statement = (
        select(Hold.id, Hold.case_id)
        .where(
            Hold.camera_id == camera_id,
            Hold.released_us.is_(None),
            Hold.start_us < end_us,
            Hold.end_us > start_us,
        )
        .order_by(Hold.id)
    )
    with index.read() as session:
        return [(hold_id, case_id) for hold_id, case_id in session.execute(statement)]
