"""The catalogue's operations: each method is one short blocking transaction.

The async server calls these through one dedicated thread; every result is a frozen row
from ``nvr.index.rows``, never an ORM object, so it can cross threads.
"""

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from nvr.config import CameraConfig, GroupConfig
from nvr.errors import StorageError
from nvr.evidence.chain import segment_link
from nvr.index.engine import SQLITE_BEGIN_OPTION
from nvr.index.evidence_queries import append_audit, chain_tip, segment_is_held
from nvr.index.models import Camera, Deletion, Gap, Group, Run, Segment
from nvr.index.queries import (
    overlapping,
    prune_gaps_before_recording,
    record_gaps_around,
)
from nvr.index.rows import (
    DeletionRow,
    GapRow,
    RunRow,
    SegmentRow,
    deletion_row,
    encode_keyframes,
    gap_row,
    run_row,
    segment_row,
)
from nvr.ingest.events import SegmentClosed
from nvr.log import fields
from nvr.timeutil import wall_now_us

log = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class Index:
    """The catalogue of groups, cameras, runs, segments, gaps and deletions.

    ``sessions`` is a plain sessionmaker for ad hoc reads; the methods below use
    ``read()`` and ``write()``. Blocking: call from a worker thread, not the event loop.
    """

    def __init__(self, engine: Engine, clock: Callable[[], int] = wall_now_us) -> None:
        self.engine = engine
        self.clock = clock
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        writer = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        self._write_sessions = sessionmaker(writer, expire_on_commit=False)

    def close(self) -> None:
        """Closes every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction; rolled back at the end."""
        with self.sessions() as session:
            try:
                yield session
            except SQLAlchemyError as exc:
                raise StorageError(f"index read failed: {exc}") from exc
            finally:
                session.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed on success (SQLite: BEGIN IMMEDIATE)."""
        with self._write_sessions() as session:
            try:
                with session.begin():
                    yield session
            except SQLAlchemyError as exc:
                raise StorageError(f"index write failed: {exc}") from exc

    # configuration

    def sync_groups_and_cameras(
        self, groups: Sequence[GroupConfig], cameras: Sequence[CameraConfig]
    ) -> None:
        """Seeds groups and cameras the index does not have yet from the config.

        Groups live in the index: once a group or a camera's assignment exists, the API
        changes it (with confirmation and an audit row) and the config file no longer
        does, so a restart never silently undoes an admin's change or shortens retention.
        Nothing is deleted: a camera gone from the config keeps its recordings, which stay
        playable and under its group's retention.
        """
        # Limitation: camera and run rows are never pruned (one run row per reconnect); the
        # fix is a sweep removing rows with no segments left, once retention has run.
        now_us = self.clock()
        with self.write() as session:
            for group in groups:
                row = session.get(Group, group.name)
                if row is None:
                    session.add(
                        Group(
                            name=group.name,
                            retention_days=group.retention_days,
                            created_us=now_us,
                        )
                    )
                elif row.retention_days != group.retention_days:
                    log.warning(
                        "config retention differs from the index; the index applies %s",
                        fields(
                            group=group.name,
                            config_days=group.retention_days,
                            index_days=row.retention_days,
                        ),
                    )
            session.flush()
            for camera in cameras:
                existing = session.get(Camera, camera.id)
                if existing is None:
                    session.add(
                        Camera(id=camera.id, group_name=camera.group, created_us=now_us)
                    )
                elif existing.group_name != camera.group:
                    log.warning(
                        "config group differs from the index; the index applies %s",
                        fields(
                            camera=camera.id,
                            config_group=camera.group,
                            index_group=existing.group_name,
                        ),
                    )

    def camera_groups(self) -> dict[str, str]:
        """Every camera's group as the index holds it."""
        with self.read() as session:
            rows = session.execute(select(Camera.id, Camera.group_name)).all()
            return {camera_id: group for camera_id, group in rows}

    def camera_ids(self) -> list[str]:
        with self.read() as session:
            return list(session.scalars(select(Camera.id).order_by(Camera.id)))

    def camera_group(self, camera_id: str) -> str | None:
        """The camera's group name, or None for an unknown camera."""
        with self.read() as session:
            return session.scalar(
                select(Camera.group_name).where(Camera.id == camera_id)
            )

    def group_retention_days(self) -> dict[str, int]:
        with self.read() as session:
            rows = session.execute(select(Group.name, Group.retention_days)).all()
            return {name: days for name, days in rows}

    # recording

    def add_segment(self, event: SegmentClosed) -> int:
        """Indexes a durable segment file and returns its segment id.

        Idempotent on ``path``: a retry returns the existing id. Creates the run row if
        missing and records the gap since the camera's previous run. Raises StorageError
        if the segment overlaps another of the same camera, if the camera is unknown, or
        if ``path`` is already indexed with different content.
        """
        _check_event(event)
        existing = self.segment_by_path(event.path)
        if existing is not None:
            return _same_file(existing, event)
        try:
            with self.write() as session:
                segment_id = self._insert_segment(session, event)
        except StorageError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            # A concurrent writer indexed the same path between our check and insert.
            existing = self.segment_by_path(event.path)
            if existing is None:
                raise
            return _same_file(existing, event)
        log.debug(
            "segment indexed %s",
            fields(camera=event.camera_id, segment=segment_id, path=event.path),
        )
        return segment_id

    def _insert_segment(self, session: Session, event: SegmentClosed) -> int:
        # Locking the camera row serializes one camera's writers on PostgreSQL, so the
        # overlap check below cannot race; SQLite's BEGIN IMMEDIATE already serializes.
        camera = session.scalars(
            select(Camera).where(Camera.id == event.camera_id).with_for_update()
        ).first()
        if camera is None:
            raise StorageError(f"camera {event.camera_id!r} is not in the index")
        self._upsert_run(session, event)

        clash = session.scalars(
            overlapping(Segment, event.camera_id, event.start_us, event.end_us).limit(1)
        ).first()
        if clash is not None:
            raise StorageError(
                f"segment {event.path} [{event.start_us}, {event.end_us}) overlaps "
                f"{clash.path} [{clash.start_us}, {clash.end_us})"
            )

        now_us = self.clock()
        segment = _segment_from_event(event, now_us)
        # evidence: link this record onto the camera's chain (camera row locked above).
        segment.chain_hash = segment_link(
            chain_tip(session, event.camera_id),
            event.camera_id,
            event.sha256,
            event.start_us,
            event.end_us,
            event.bytes,
        )
        session.add(segment)
        session.flush()
        record_gaps_around(session, segment, now_us)
        return segment.id

    def _upsert_run(self, session: Session, event: SegmentClosed) -> None:
        run = session.get(Run, event.run_id)
        if run is None:
            session.add(
                Run(
                    id=event.run_id,
                    camera_id=event.camera_id,
                    started_us=event.start_us,
                )
            )
            session.flush()
            return
        if run.camera_id != event.camera_id:
            raise StorageError(
                f"run {event.run_id} belongs to camera {run.camera_id!r}, "
                f"not {event.camera_id!r}"
            )
        # A run row made by end_run (before any segment) holds a placeholder start.
        run.started_us = min(run.started_us, event.start_us)

    def end_run(self, camera_id: str, run_id: str, end_us: int, reason: str) -> None:
        """Records how and when a run ended; the reason labels the gap that follows.

        A run not yet indexed (its segments may still be on their way) gets a row now,
        started at ``end_us`` until its first segment says otherwise.
        """
        with self.write() as session:
            run = session.get(Run, run_id)
            if run is None:
                if session.get(Camera, camera_id) is None:
                    raise StorageError(f"camera {camera_id!r} is not in the index")
                run = Run(id=run_id, camera_id=camera_id, started_us=end_us)
                session.add(run)
            elif run.camera_id != camera_id:
                raise StorageError(f"run {run_id} belongs to camera {run.camera_id!r}")
            run.ended_us = end_us
            run.end_reason = reason

    def run(self, run_id: str) -> RunRow | None:
        with self.read() as session:
            run = session.get(Run, run_id)
            return None if run is None else run_row(run)

    # playback

    def segments_overlapping(
        self, camera_id: str, start_us: int, end_us: int
    ) -> list[SegmentRow]:
        """The camera's segments overlapping ``[start_us, end_us)``, ordered by start."""
        with self.read() as session:
            statement = overlapping(Segment, camera_id, start_us, end_us)
            return [segment_row(segment) for segment in session.scalars(statement)]

    def gaps_overlapping(
        self, camera_id: str, start_us: int, end_us: int
    ) -> list[GapRow]:
        """The camera's gaps overlapping ``[start_us, end_us)``, ordered by start."""
        with self.read() as session:
            statement = overlapping(Gap, camera_id, start_us, end_us)
            return [gap_row(gap) for gap in session.scalars(statement)]

    def last_segment(self, camera_id: str) -> SegmentRow | None:
        """The camera's latest segment, or None if it has none."""
        with self.read() as session:
            segment = session.scalars(
                select(Segment)
                .where(Segment.camera_id == camera_id)
                .order_by(Segment.start_us.desc())
                .limit(1)
            ).first()
            return None if segment is None else segment_row(segment)

    def segment_by_path(self, path: str) -> SegmentRow | None:
        with self.read() as session:
            segment = session.scalars(
                select(Segment).where(Segment.path == path)
            ).first()
            return None if segment is None else segment_row(segment)

    def segment_by_id(self, segment_id: int) -> SegmentRow | None:
        with self.read() as session:
            segment = session.get(Segment, segment_id)
            return None if segment is None else segment_row(segment)

    # retention

    def segments_older_than(
        self,
        end_before_us: int,
        limit: int,
        *,
        camera_id: str | None = None,
        group: str | None = None,
    ) -> list[SegmentRow]:
        """Segments ending before ``end_before_us``, oldest end first, at most ``limit``.

        Narrowed to one camera, or to the cameras of one group; neither means all.
        Segments under an unreleased hold are never returned (evidence, issue 5).
        """
        statement = select(Segment).where(
            Segment.end_us < end_before_us, ~segment_is_held()
        )
        if camera_id is not None:
            statement = statement.where(Segment.camera_id == camera_id)
        if group is not None:
            statement = statement.join(Camera, Camera.id == Segment.camera_id).where(
                Camera.group_name == group
            )
        statement = statement.order_by(Segment.end_us, Segment.id).limit(limit)
        with self.read() as session:
            return [segment_row(segment) for segment in session.scalars(statement)]

    def held(self, segment_id: int) -> bool:
        """Whether the segment overlaps an unreleased hold (retention must keep it)."""
        with self.read() as session:
            statement = select(Segment.id).where(
                Segment.id == segment_id, segment_is_held()
            )
            return session.scalar(statement) is not None

    def delete_segment_row(
        self, segment_id: int, reason: str, deleted_us: int, actor: str = "retention"
    ) -> DeletionRow | None:
        """Logs the deletion and removes the segment row in one transaction.

        Returns the deletions row, or None if the segment was already gone (a retry) or
        is under a hold placed since it was selected. Gaps older than the camera's
        remaining recordings go with it. The deletion keeps the segment's hash and chain
        link and is written to the audit log by ``actor``.
        """
        with self.write() as session:
            segment = session.get(Segment, segment_id, with_for_update=True)
            if (
                segment is None
                or session.scalar(
                    select(Segment.id).where(
                        Segment.id == segment_id, segment_is_held()
                    )
                )
                is not None
            ):
                return None
            deletion = Deletion(
                camera_id=segment.camera_id,
                segment_id=segment.id,
                path=segment.path,
                start_us=segment.start_us,
                end_us=segment.end_us,
                bytes=segment.bytes,
                reason=reason,
                deleted_us=deleted_us,
                sha256=segment.sha256,
                chain_hash=segment.chain_hash,
            )
            session.add(deletion)
            append_audit(
                session,
                deleted_us,
                actor,
                "deletion",
                segment.path,
                {
                    "segment_id": segment.id,
                    "reason": reason,
                    "bytes": segment.bytes,
                    "sha256": segment.sha256,
                },
                camera_id=segment.camera_id,
            )
            session.delete(segment)
            session.flush()
            prune_gaps_before_recording(session, segment.camera_id, segment.end_us)
            return deletion_row(deletion)

    def deletion_by_path(self, path: str) -> DeletionRow | None:
        """The deletions row of a segment file, if one was ever deleted at ``path``."""
        with self.read() as session:
            statement = select(Deletion).where(Deletion.path == path).limit(1)
            deletion = session.scalars(statement).first()
            return None if deletion is None else deletion_row(deletion)

    def deletions(self, camera_id: str, limit: int = 100) -> list[DeletionRow]:
        """The camera's most recent deletions, newest first."""
        with self.read() as session:
            statement = (
                select(Deletion)
                .where(Deletion.camera_id == camera_id)
                .order_by(Deletion.deleted_us.desc(), Deletion.id.desc())
                .limit(limit)
            )
            return [deletion_row(deletion) for deletion in session.scalars(statement)]


def _check_event(event: SegmentClosed) -> None:
    if event.end_us <= event.start_us:
        raise StorageError(
            f"segment {event.path}: end {event.end_us} not after start {event.start_us}"
        )
    if event.bytes <= 0:
        raise StorageError(f"segment {event.path}: size {event.bytes} bytes")
    if not _SHA256_HEX.match(event.sha256):
        raise StorageError(
            f"segment {event.path}: sha256 is not 64 lowercase hex digits"
        )


def _same_file(existing: SegmentRow, event: SegmentClosed) -> int:
    """The id of an already indexed path, if it is the same file; else StorageError."""
    if existing.sha256 != event.sha256 or existing.camera_id != event.camera_id:
        raise StorageError(
            f"segment {event.path} is already indexed with different content "
            f"(sha256 {existing.sha256[:12]}… vs {event.sha256[:12]}…)"
        )
    return existing.id


def _segment_from_event(event: SegmentClosed, now_us: int) -> Segment:
    return Segment(
        camera_id=event.camera_id,
        run_id=event.run_id,
        seq=event.seq,
        path=event.path,
        start_us=event.start_us,
        end_us=event.end_us,
        media_start=event.media_start,
        media_duration=event.media_duration,
        timescale=event.timescale,
        bytes=event.bytes,
        sha256=event.sha256,
        video_codec=event.video_codec,
        audio_codec=event.audio_codec,
        width=event.width,
        height=event.height,
        keyframes=encode_keyframes(event.keyframes),
        created_us=now_us,
    )
