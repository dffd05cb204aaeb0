"""The index side of deleting segments: choosing them, marking them, logging them gone.

Every function is one short blocking transaction: call it through the server's index
thread. The deletion procedure that strings them together is in ``nvr.retention.deleter``
and docs/retention.md.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, func, select, tuple_

from nvr.index.evidence_queries import append_audit, segment_is_held
from nvr.index.models import Camera, Deletion, Group, Hold, Replica, Segment
from nvr.index.queries import prune_gaps_before_recording
from nvr.index.repo import Index
from nvr.index.rows import DeletionRow, deletion_row

US_PER_DAY = 86_400 * 1_000_000
EVICTED = "evicted"


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


_Query = Select[Segment, Group, Replica, bool]


def _candidates() -> _Query:
    return (
        select(Segment, Group, Replica, segment_is_held().label("held"))
        .join(Camera, Camera.id == Segment.camera_id)
        .join(Group, Group.name == Camera.group_name)
        .outerjoin(Replica, Replica.segment_id == Segment.id)
    )


def _candidate(
    segment: Segment, group: Group, replica: Replica | None, held: bool
) -> Candidate:
    return Candidate(
        segment_id=segment.id,
        camera_id=segment.camera_id,
        group=group.name,
        priority=group.priority or 0,
        path=segment.path,
        start_us=segment.start_us,
        end_us=segment.end_us,
        bytes=segment.bytes,
        replica_state=None if replica is None else replica.state,
        object_key=None if replica is None else replica.object_key,
        version_id=None if replica is None else replica.version_id,
        upload_id=None if replica is None else replica.upload_id,
        held=bool(held),
        deleting_reason=segment.deleting_reason,
        checksum=None if replica is None else replica.checksum,
    )


def _run(index: Index, statement: _Query) -> list[Candidate]:
    with index.read() as session:
        return [
            _candidate(s, g, r, h) for s, g, r, h in session.execute(statement).all()
        ]


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
    statement = _candidates().where(
        Group.name == group,
        Segment.end_us < end_before_us,
        Segment.deleting_us.is_(None),
    )
    if not include_held:
        statement = statement.where(~segment_is_held())
    if after is not None:
        statement = statement.where(tuple_(Segment.end_us, Segment.id) > tuple_(*after))
    return _run(index, statement.order_by(Segment.end_us, Segment.id).limit(limit))


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


def marked(index: Index, limit: int) -> list[Candidate]:
    """Segments whose deletion began but did not finish, oldest mark first."""
    statement = _candidates().where(Segment.deleting_us.is_not(None))
    return _run(index, statement.order_by(Segment.deleting_us, Segment.id).limit(limit))


def mark_deleting(
    index: Index, segment_id: int, reason: str, now_us: int
) -> Candidate | None:
    """Step 1: marks the segment as being deleted, unless it is gone or held.

    Returns the marked segment (also when an earlier attempt marked it already), or
    None: the segment was deleted meanwhile, or a hold now covers it.
    """
    with index.write() as session:
        segment = session.get(Segment, segment_id, with_for_update=True)
        if segment is None:
            return None
        _, group, replica, held = session.execute(
            _candidates().where(Segment.id == segment_id)
        ).one()
        if segment.deleting_us is None:
            if held:
                return None
            segment.deleting_us = now_us
            segment.deleting_reason = reason
            session.flush()
        return _candidate(segment, group, replica, held)


def unmark(index: Index, segment_ids: Iterable[int]) -> None:
    """Withdraws marks whose deletion had not touched any byte yet (a hold came first)."""
    with index.write() as session:
        for segment_id in segment_ids:
            segment = session.get(Segment, segment_id)
            if segment is not None:
                segment.deleting_us = None
                segment.deleting_reason = None


def finish_deletion(
    index: Index, segment_id: int, actor: str, now_us: int
) -> DeletionRow | None:
    """Step 3: logs the deletion (append-only) and removes the marked row, together.

    Called only once the file and object are gone, so the hold check was done at the
    mark. Returns None when the row is already gone (a retry) or was never marked.
    """
    with index.write() as session:
        segment = session.get(Segment, segment_id, with_for_update=True)
        if segment is None or segment.deleting_us is None:
            return None
        reason = segment.deleting_reason or "retention"
        deletion = Deletion(
            camera_id=segment.camera_id,
            segment_id=segment.id,
            path=segment.path,
            start_us=segment.start_us,
            end_us=segment.end_us,
            bytes=segment.bytes,
            reason=reason,
            deleted_us=now_us,
            sha256=segment.sha256,
            chain_hash=segment.chain_hash,
        )
        session.add(deletion)
        append_audit(
            session,
            now_us,
            actor,
            "deletion",
            segment.path,
            {
                "segment_id": segment.id,
                "reason": reason,
                "bytes": segment.bytes,
                "sha256": segment.sha256,
                "start_us": segment.start_us,
                "end_us": segment.end_us,
            },
            camera_id=segment.camera_id,
        )
        session.delete(segment)
        session.flush()
        prune_gaps_before_recording(session, segment.camera_id, segment.end_us)
        return deletion_row(deletion)


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
