"""The replication queue as kept in the index: one ``replicas`` row per segment.

Every function is one short transaction and blocks: call it through the server's index
thread (``index_call``), like every other index operation. States and the procedures
moving between them are described in docs/storage.md.
"""

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import and_, func, select, update

from nvr.index.models import Camera, Group, Replica, Segment
from nvr.index.repo import Index
from nvr.storage.keys import object_key

ENQUEUE_BATCH = 1000


class ReplicaState(StrEnum):
    LOCAL = "local"  # only on local disk (also: a segment with no replicas row yet)
    UPLOADING = "uploading"  # an upload started; may have finished before a crash
    REPLICATED = "replicated"  # verified in S3, local copy kept
    EVICTED = "evicted"  # verified in S3, local copy removed


PENDING = (ReplicaState.LOCAL.value, ReplicaState.UPLOADING.value)


@dataclass(frozen=True)
class QueueItem:
    """One segment waiting for upload, with what the upload needs."""

    segment_id: int
    camera_id: str
    path: str  # relative to the storage root
    start_us: int
    end_us: int
    bytes: int
    sha256: str
    retention_days: int
    state: str
    object_key: str
    upload_id: str | None
    attempts: int


@dataclass(frozen=True)
class Replicated:
    """A replicated segment whose local copy may be evicted."""

    segment_id: int
    camera_id: str
    path: str
    bytes: int
    object_key: str
    checksum: str | None


@dataclass(frozen=True)
class TierTotals:
    segments: int
    bytes: int


@dataclass(frozen=True)
class Backlog:
    """Segments not yet in S3: how many, how large, and the oldest of them."""

    segments: int
    bytes: int
    oldest_segment_id: int | None
    oldest_camera_id: str | None
    oldest_start_us: int | None


def enqueue_new(index: Index, prefix: str, after_id: int, now_us: int) -> int:
    """Gives every segment with id above ``after_id`` and no row a ``local`` row.

    Returns the highest segment id seen, the ``after_id`` of the next call. Segment
    ids grow with indexing order and the supervisor is the index's only writer, so a
    segment indexed later always has a higher id than any seen here.
    """
    highest = after_id
    while True:
        with index.write() as session:
            rows = session.execute(
                select(
                    Segment.id, Segment.camera_id, Segment.start_us, Replica.segment_id
                )
                .outerjoin(Replica, Replica.segment_id == Segment.id)
                .where(Segment.id > highest)
                .order_by(Segment.id)
                .limit(ENQUEUE_BATCH)
            ).all()
            for segment_id, camera_id, start_us, existing in rows:
                if existing is not None:
                    continue
                session.add(
                    Replica(
                        segment_id=segment_id,
                        state=ReplicaState.LOCAL.value,
                        object_key=object_key(prefix, camera_id, start_us),
                        attempts=0,
                        updated_us=now_us,
                    )
                )
            if rows:
                highest = rows[-1][0]
        if len(rows) < ENQUEUE_BATCH:
            return highest


def next_batch(index: Index, limit: int, exclude: set[int]) -> list[QueueItem]:
    """Up to ``limit`` pending segments, oldest indexed first, skipping ``exclude``."""
    statement = (
        select(Replica, Segment, Group.retention_days)
        .join(Segment, Segment.id == Replica.segment_id)
        .join(Camera, Camera.id == Segment.camera_id)
        .join(Group, Group.name == Camera.group_name)
        .where(Replica.state.in_(PENDING))
        .order_by(Replica.segment_id)
        .limit(limit)
    )
    if exclude:
        statement = statement.where(Replica.segment_id.not_in(sorted(exclude)))
    with index.read() as session:
        return [
            QueueItem(
                segment_id=segment.id,
                camera_id=segment.camera_id,
                path=segment.path,
                start_us=segment.start_us,
                end_us=segment.end_us,
                bytes=segment.bytes,
                sha256=segment.sha256,
                retention_days=retention_days,
                state=replica.state,
                object_key=replica.object_key,
                upload_id=replica.upload_id,
                attempts=replica.attempts,
            )
            for replica, segment, retention_days in session.execute(statement).all()
        ]


def mark_uploading(
    index: Index, segment_id: int, upload_id: str | None, now_us: int
) -> None:
    """Records that an upload starts (and its multipart id), before any byte is sent."""
    _update(
        index,
        segment_id,
        state=ReplicaState.UPLOADING.value,
        upload_id=upload_id,
        attempts=Replica.attempts + 1,
        updated_us=now_us,
    )


def set_upload_id(
    index: Index, segment_id: int, upload_id: str | None, now_us: int
) -> None:
    """Records a multipart upload's id as soon as S3 gives it, so a crash can abort it."""
    _update(index, segment_id, upload_id=upload_id, updated_us=now_us)


def mark_replicated(
    index: Index,
    segment_id: int,
    checksum: str | None,
    version_id: str | None,
    retain_until_us: int | None,
    now_us: int,
) -> None:
    """The object was verified: the segment counts as replicated from now on."""
    _update(
        index,
        segment_id,
        state=ReplicaState.REPLICATED.value,
        upload_id=None,
        checksum=checksum,
        version_id=version_id,
        retain_until_us=retain_until_us,
        last_error=None,
        replicated_us=now_us,
        updated_us=now_us,
    )


def mark_failed(index: Index, segment_id: int, error: str, now_us: int) -> None:
    """The upload failed; the segment stays queued as ``local`` with the reason."""
    _update(
        index,
        segment_id,
        state=ReplicaState.LOCAL.value,
        upload_id=None,
        last_error=error[:2000],
        updated_us=now_us,
    )


def mark_evicted(index: Index, segment_id: int, now_us: int) -> None:
    _update(
        index,
        segment_id,
        state=ReplicaState.EVICTED.value,
        evicted_us=now_us,
        updated_us=now_us,
    )


def _update(index: Index, segment_id: int, **values: object) -> None:
    # A segment deleted by retention meanwhile takes its row with it: nothing to do.
    with index.write() as session:
        session.execute(
            update(Replica).where(Replica.segment_id == segment_id).values(**values)
        )


def eviction_candidates(
    index: Index, group: str, end_before_us: int, limit: int
) -> list[Replicated]:
    """Replicated segments of ``group`` that ended before ``end_before_us``, oldest first."""
    statement = (
        select(Replica, Segment)
        .join(Segment, Segment.id == Replica.segment_id)
        .join(Camera, Camera.id == Segment.camera_id)
        .where(Replica.state == ReplicaState.REPLICATED.value)
        .where(Camera.group_name == group)
        .where(Segment.end_us < end_before_us)
        .order_by(Replica.segment_id)
        .limit(limit)
    )
    with index.read() as session:
        return [
            Replicated(
                segment_id=segment.id,
                camera_id=segment.camera_id,
                path=segment.path,
                bytes=segment.bytes,
                object_key=replica.object_key,
                checksum=replica.checksum,
            )
            for replica, segment in session.execute(statement).all()
        ]


def states(index: Index, segment_ids: list[int]) -> dict[int, str]:
    """The state of each given segment; segments without a row are ``local``."""
    found: dict[int, str] = {}
    with index.read() as session:
        for start in range(0, len(segment_ids), 500):
            chunk = segment_ids[start : start + 500]
            rows = session.execute(
                select(Replica.segment_id, Replica.state).where(
                    Replica.segment_id.in_(chunk)
                )
            ).all()
            found.update({segment_id: state for segment_id, state in rows})
    return {sid: found.get(sid, ReplicaState.LOCAL.value) for sid in segment_ids}


def object_keys(index: Index, segment_ids: list[int]) -> dict[int, str]:
    """The object key of each given segment that is replicated or evicted."""
    with index.read() as session:
        rows = session.execute(
            select(Replica.segment_id, Replica.object_key)
            .where(Replica.segment_id.in_(segment_ids))
            .where(Replica.state.not_in(PENDING))
        ).all()
    return {segment_id: key for segment_id, key in rows}


def backlog(index: Index) -> Backlog:
    """Count, bytes and oldest of the segments not yet replicated."""
    pending = (
        select(Segment.id, Segment.bytes, Segment.camera_id, Segment.start_us)
        .outerjoin(Replica, Replica.segment_id == Segment.id)
        .where(Replica.segment_id.is_(None) | Replica.state.in_(PENDING))
        .subquery()
    )
    with index.read() as session:
        count, total = session.execute(
            select(func.count(), func.coalesce(func.sum(pending.c.bytes), 0))
        ).one()
        oldest = session.execute(
            select(pending.c.id, pending.c.camera_id, pending.c.start_us)
            .order_by(pending.c.start_us, pending.c.id)
            .limit(1)
        ).first()
    if oldest is None:
        return Backlog(int(count), int(total), None, None, None)
    return Backlog(int(count), int(total), oldest[0], oldest[1], oldest[2])


def totals(index: Index) -> dict[str, TierTotals]:
    """Segments and bytes per settled state (``replicated``, ``evicted``)."""
    settled = (ReplicaState.REPLICATED.value, ReplicaState.EVICTED.value)
    with index.read() as session:
        rows = session.execute(
            select(
                Replica.state, func.count(), func.coalesce(func.sum(Segment.bytes), 0)
            )
            .join(Segment, and_(Segment.id == Replica.segment_id))
            .where(Replica.state.in_(settled))
            .group_by(Replica.state)
        ).all()
    found = {state: TierTotals(int(n), int(b)) for state, n, b in rows}
    return {state: found.get(state, TierTotals(0, 0)) for state in settled}


def last_errors(index: Index, limit: int = 5) -> list[tuple[int, str]]:
    """The most recent per-segment upload errors of segments still pending."""
    with index.read() as session:
        rows = session.execute(
            select(Replica.segment_id, Replica.last_error)
            .where(Replica.state.in_(PENDING))
            .where(Replica.last_error.is_not(None))
            .order_by(Replica.updated_us.desc())
            .limit(limit)
        ).all()
    return [(segment_id, str(error)) for segment_id, error in rows]
