"""Retention groups as data: listing, creating and changing them, moving cameras.

Groups live in the index; the config file seeds them at startup. Changing one is
audited with the actor. A change that makes segments due for deletion sooner (a shorter
``retention_days``, or a camera moved to a group keeping less) is dangerous: without
``confirm`` it is not applied and ``DangerousChange`` carries what it would delete.
Every function blocks: call it through the index thread.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from nvr.config import GroupConfig
from nvr.errors import NotFound, RequestError
from nvr.index.evidence_queries import append_audit, segment_is_held
from nvr.index.models import Camera, Group, Segment
from nvr.index.repo import Index
from nvr.retention.catalogue import US_PER_DAY


class GroupConflict(RequestError):
    """The group already exists."""

    status = 409


@dataclass(frozen=True)
class Impact:
    """What the next sweep would delete because of a change: segments and bytes."""

    segments: int
    bytes: int


class DangerousChange(RequestError):
    """A change that deletes recordings, refused until confirmed; carries its impact."""

    status = 409

    def __init__(self, message: str, impact: Impact) -> None:
        super().__init__(message)
        self.impact = impact


@dataclass(frozen=True)
class GroupRow:
    name: str
    retention_days: int
    local_days: float | None
    priority: int
    cameras: tuple[str, ...]
    created_us: int

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retention_days": self.retention_days,
            "local_days": self.local_days,
            "priority": self.priority,
            "cameras": list(self.cameras),
        }


def _row(group: Group, cameras: Sequence[str]) -> GroupRow:
    return GroupRow(
        group.name,
        group.retention_days,
        group.local_days,
        group.priority or 0,
        tuple(sorted(cameras)),
        group.created_us,
    )


def _days(value: float | None) -> str | None:
    """A fractional day count for the audit log, whose canonical JSON has no floats."""
    return None if value is None else repr(float(value))


def _settings(group: Group) -> dict[str, Any]:
    return {
        "retention_days": group.retention_days,
        "local_days": _days(group.local_days),
        "priority": group.priority,
    }


def list_groups(index: Index) -> list[GroupRow]:
    with index.read() as session:
        members: dict[str, list[str]] = {}
        for camera_id, group_name in session.execute(
            select(Camera.id, Camera.group_name)
        ):
            members.setdefault(group_name, []).append(camera_id)
        groups = session.scalars(select(Group).order_by(Group.name))
        return [_row(group, members.get(group.name, [])) for group in groups]


def get_group(index: Index, name: str) -> GroupRow:
    for group in list_groups(index):
        if group.name == name:
            return group
    raise NotFound(f"unknown group {name!r}")


def seed_group_settings(index: Index, groups: Sequence[GroupConfig]) -> None:
    """Fills ``local_days`` and ``priority`` the index does not have yet from the config."""
    with index.write() as session:
        for config in groups:
            group = session.get(Group, config.name)
            if group is None:
                continue
            if group.priority is None:
                group.priority = config.priority
            if group.local_days is None and config.local_days is not None:
                group.local_days = config.local_days


def create_group(
    index: Index,
    name: str,
    retention_days: int,
    local_days: float | None,
    priority: int,
    actor: str,
) -> GroupRow:
    with index.write() as session:
        if session.get(Group, name) is not None:
            raise GroupConflict(f"group {name!r} already exists")
        now_us = index.clock()
        group = Group(
            name=name,
            retention_days=retention_days,
            local_days=local_days,
            priority=priority,
            created_us=now_us,
        )
        session.add(group)
        append_audit(
            session,
            now_us,
            actor,
            "group-create",
            name,
            {
                "retention_days": retention_days,
                "local_days": _days(local_days),
                "priority": priority,
            },
        )
        session.flush()
        return _row(group, [])


def deletion_impact(
    index: Index,
    retention_days: int,
    *,
    group: str | None = None,
    camera_id: str | None = None,
) -> Impact:
    """Unheld segments (of a group or camera) older than ``retention_days`` now."""
    cutoff_us = index.clock() - retention_days * US_PER_DAY
    statement = (
        select(func.count(), func.coalesce(func.sum(Segment.bytes), 0))
        .join(Camera, Camera.id == Segment.camera_id)
        .where(Segment.end_us < cutoff_us, ~segment_is_held())
    )
    if group is not None:
        statement = statement.where(Camera.group_name == group)
    if camera_id is not None:
        statement = statement.where(Segment.camera_id == camera_id)
    with index.read() as session:
        count, total = session.execute(statement).one()
    return Impact(int(count), int(total))


def update_group(
    index: Index, name: str, changes: dict[str, Any], actor: str, confirm: bool
) -> tuple[GroupRow, Impact]:
    """Applies ``changes`` (retention_days, local_days, priority) to the group.

    Raises DangerousChange, applying nothing, when a shorter retention would delete
    segments and ``confirm`` is false. Returns the group and the deletion impact.
    """
    current = get_group(index, name)
    impact = Impact(0, 0)
    new_days = changes.get("retention_days", current.retention_days)
    if new_days < current.retention_days:
        impact = deletion_impact(index, new_days, group=name)
        if impact.segments and not confirm:
            raise DangerousChange(
                f"shortening {name!r} from {current.retention_days} to {new_days} days "
                f"deletes {impact.segments} segment(s), {impact.bytes} bytes: repeat "
                'with "confirm": true to apply',
                impact,
            )
    with index.write() as session:
        group = session.get(Group, name, with_for_update=True)
        if group is None:
            raise NotFound(f"unknown group {name!r}")
        before = _settings(group)
        for key, value in changes.items():
            setattr(group, key, value)
        after = _settings(group)
        append_audit(
            session,
            index.clock(),
            actor,
            "retention-change",
            name,
            {
                "before": before,
                "after": after,
                "confirmed": confirm,
                "deletes_segments": impact.segments,
                "deletes_bytes": impact.bytes,
            },
        )
    return get_group(index, name), impact


def set_camera_group(
    index: Index, camera_id: str, group_name: str, actor: str, confirm: bool
) -> Impact:
    """Moves a camera to another group; DangerousChange if that deletes unconfirmed."""
    with index.read() as session:
        camera = session.get(Camera, camera_id)
        target = session.get(Group, group_name)
        if camera is None:
            raise NotFound(f"unknown camera {camera_id!r}")
        if target is None:
            raise NotFound(f"unknown group {group_name!r}")
        source = session.get(Group, camera.group_name)
        before_days = source.retention_days if source is not None else 0
        previous, after_days = camera.group_name, target.retention_days
    impact = Impact(0, 0)
    if after_days < before_days:
        impact = deletion_impact(index, after_days, camera_id=camera_id)
        if impact.segments and not confirm:
            raise DangerousChange(
                f"moving {camera_id!r} from {previous!r} ({before_days} days) to "
                f"{group_name!r} ({after_days} days) deletes {impact.segments} "
                f'segment(s), {impact.bytes} bytes: repeat with "confirm": true',
                impact,
            )
    with index.write() as session:
        camera = session.get(Camera, camera_id, with_for_update=True)
        assert camera is not None
        camera.group_name = group_name
        append_audit(
            session,
            index.clock(),
            actor,
            "group-change",
            camera_id,
            {
                "before": previous,
                "after": group_name,
                "confirmed": confirm,
                "deletes_segments": impact.segments,
                "deletes_bytes": impact.bytes,
            },
            camera_id=camera_id,
        )
    return impact
