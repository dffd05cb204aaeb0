"""Statement builders and in-transaction helpers shared by the catalogue's operations.

Interval lookups rely on one invariant, enforced by ``add_segment``: a camera's segments
never overlap (and the gap upkeep here keeps its gaps disjoint too). So among the
intervals starting at or before ``start_us`` only the latest can reach into the range,
and "overlapping [start, end)" becomes one bounded range on the ``(camera_id, start_us)``
index: ``start_us`` from that latest start (an O(log n) max() on the same index) up to
``end_us``. No scan grows with the camera's history.
"""

from collections.abc import Mapping
from typing import TypeVar

from sqlalchemy import Select, delete, exists, func, select
from sqlalchemy.orm import Session

from nvr.index.models import Camera, Gap, Run, Segment

_Interval = TypeVar("_Interval", Segment, Gap)

# Gap reason when the run before a gap ended without saying why (or never said).
DEFAULT_GAP_REASON = "disconnected"


def overlapping(
    model: type[_Interval], camera_id: str, start_us: int, end_us: int
) -> Select[_Interval]:
    """Rows of ``model`` for ``camera_id`` overlapping ``[start_us, end_us)``, by start."""
    floor_us = (
        select(func.max(model.start_us))
        .where(model.camera_id == camera_id, model.start_us <= start_us)
        .scalar_subquery()
    )
    return (
        select(model)
        .where(
            model.camera_id == camera_id,
            model.start_us >= func.coalesce(floor_us, start_us),
            model.start_us < end_us,
            model.end_us > start_us,
        )
        .order_by(model.start_us)
    )


def previous_segment(
    session: Session, camera_id: str, before_us: int
) -> Segment | None:
    """The camera's segment ending latest at or before ``before_us``."""
    statement = (
        select(Segment)
        .where(Segment.camera_id == camera_id, Segment.end_us <= before_us)
        .order_by(Segment.end_us.desc())
        .limit(1)
    )
    return session.scalars(statement).first()


def next_segment(session: Session, camera_id: str, after_us: int) -> Segment | None:
    """The camera's segment starting earliest at or after ``after_us``."""
    statement = (
        select(Segment)
        .where(Segment.camera_id == camera_id, Segment.start_us >= after_us)
        .order_by(Segment.start_us)
        .limit(1)
    )
    return session.scalars(statement).first()


def run_end_reason(session: Session, run_id: str) -> str:
    run = session.get(Run, run_id)
    if run is None or run.end_reason is None:
        return DEFAULT_GAP_REASON
    return run.end_reason


def carve_gaps(session: Session, camera_id: str, start_us: int, end_us: int) -> None:
    """Cuts ``[start_us, end_us)``, now recorded, out of the camera's gaps.

    A segment indexed late (recovery) can land inside a gap recorded earlier.
    """
    for gap in session.scalars(overlapping(Gap, camera_id, start_us, end_us)).all():
        pieces = [
            (gap.start_us, min(gap.end_us, start_us)),
            (max(gap.start_us, end_us), gap.end_us),
        ]
        for piece_start_us, piece_end_us in pieces:
            if piece_end_us > piece_start_us:
                session.add(
                    Gap(
                        camera_id=camera_id,
                        start_us=piece_start_us,
                        end_us=piece_end_us,
                        reason=gap.reason,
                        created_us=gap.created_us,
                    )
                )
        session.delete(gap)
    session.flush()


def ensure_gap(
    session: Session,
    camera_id: str,
    start_us: int,
    end_us: int,
    reason: str,
    now_us: int,
) -> None:
    """Records ``[start_us, end_us)`` as a gap unless a gap already covers part of it."""
    if end_us <= start_us:
        return
    if session.scalars(overlapping(Gap, camera_id, start_us, end_us).limit(1)).first():
        return
    session.add(
        Gap(
            camera_id=camera_id,
            start_us=start_us,
            end_us=end_us,
            reason=reason,
            created_us=now_us,
        )
    )
    session.flush()


def record_gaps_around(session: Session, segment: Segment, now_us: int) -> None:
    """Keeps gaps explicit around a newly added segment (before and after it).

    A gap lies between two neighbouring segments of different runs that do not touch;
    its reason is how the earlier run ended.
    """
    # Limitation: an outage still going on has no gap row until the camera's next segment
    # arrives; callers treat time after last_segment() as unrecorded. The right fix is an
    # open-ended gap row written by end_run and closed by the next add_segment.
    carve_gaps(session, segment.camera_id, segment.start_us, segment.end_us)

    before = previous_segment(session, segment.camera_id, segment.start_us)
    if before is not None and before.run_id != segment.run_id:
        ensure_gap(
            session,
            segment.camera_id,
            before.end_us,
            segment.start_us,
            run_end_reason(session, before.run_id),
            now_us,
        )

    after = next_segment(session, segment.camera_id, segment.end_us)
    if after is not None and after.run_id != segment.run_id:
        ensure_gap(
            session,
            segment.camera_id,
            segment.end_us,
            after.start_us,
            run_end_reason(session, segment.run_id),
            now_us,
        )


def prune_gaps_before_recording(
    session: Session, camera_id: str, deleted_end_us: int
) -> None:
    """Drops gaps older than the camera's earliest remaining segment (after a deletion).

    Time before the first recording is "no recording" anyway; keeping those gaps would let
    them pile up forever as retention eats the oldest segments.
    """
    earliest_us = session.scalar(
        select(func.min(Segment.start_us)).where(Segment.camera_id == camera_id)
    )
    horizon_us = deleted_end_us if earliest_us is None else earliest_us
    # Limitation: deleting a segment in the middle of the history (not the oldest) leaves
    # a hole with no gap row; the fix is a "deleted" gap merged with its neighbours.
    session.execute(
        delete(Gap).where(Gap.camera_id == camera_id, Gap.end_us <= horizon_us)
    )


def prune_gaps_before_recordings(
    session: Session, deleted_end_us: Mapping[str, int]
) -> None:
    """``prune_gaps_before_recording`` for several cameras at once (a deletion batch):
    ``deleted_end_us`` maps each camera to the latest end among its deleted segments.

    One statement covers the cameras that still have segments; a camera left with none
    falls back to its deleted end, as in the one-camera form.
    """
    if not deleted_end_us:
        return
    cameras = sorted(deleted_end_us)
    earliest_us = (
        select(func.min(Segment.start_us))
        .where(Segment.camera_id == Gap.camera_id)
        .scalar_subquery()
    )
    session.execute(
        delete(Gap)
        .where(Gap.camera_id.in_(cameras), Gap.end_us <= earliest_us)
        .execution_options(synchronize_session=False)
    )
    recorded = set(
        session.scalars(
            select(Camera.id).where(
                Camera.id.in_(cameras),
                exists().where(Segment.camera_id == Camera.id),
            )
        )
    )
    for camera_id in cameras:
        if camera_id in recorded:
            continue
        session.execute(
            delete(Gap)
            .where(Gap.camera_id == camera_id, Gap.end_us <= deleted_end_us[camera_id])
            .execution_options(synchronize_session=False)
        )
