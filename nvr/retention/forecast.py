"""Capacity forecast per group: will the local disk hold each group's retention?

For each group: bytes on each tier, the ingest rate over the last hour, the days of
recording currently kept, and how many days the disk's free space still lasts. The
free space is shared, so it is divided by the ingest rate of all groups together. A
group gets a warning when the days it keeps plus the days left before the disk fills
fall short of what it must keep locally (``local_days`` with S3, else
``retention_days``): by then disk pressure will delete its oldest segments early.
Blocking (index reads and one statvfs): call it through the index thread.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import func, select

from nvr.index.models import Camera, Group, Replica, Segment
from nvr.index.repo import Index
from nvr.retention.catalogue import US_PER_DAY

HOUR_US = 3_600 * 1_000_000
S3_STATES = ("replicated", "evicted")
LOCAL_FREE_STATES = ("evicted",)


@dataclass(frozen=True)
class GroupForecast:
    name: str
    retention_days: int
    local_days: float | None
    bytes_local: int
    bytes_s3: int
    ingest_bytes_per_s: float
    days_recorded: float
    free_days: float | None  # None: nothing is being recorded
    must_keep_days: float
    warning: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retention_days": self.retention_days,
            "local_days": self.local_days,
            "bytes": {"local": self.bytes_local, "s3": self.bytes_s3},
            "ingest_bytes_per_s": round(self.ingest_bytes_per_s, 1),
            "days_recorded": round(self.days_recorded, 3),
            "free_days": None if self.free_days is None else round(self.free_days, 2),
            "must_keep_local_days": self.must_keep_days,
            "warning": self.warning,
        }


def _tier_bytes(index: Index) -> dict[str, tuple[int, int]]:
    """Group -> (bytes with a local file, bytes in S3)."""
    local = func.sum(Segment.bytes).filter(
        Replica.state.is_(None) | Replica.state.not_in(LOCAL_FREE_STATES)
    )
    in_s3 = func.sum(Segment.bytes).filter(Replica.state.in_(S3_STATES))
    statement = (
        select(Camera.group_name, local, in_s3)
        .select_from(Segment)
        .join(Camera, Camera.id == Segment.camera_id)
        .outerjoin(Replica, Replica.segment_id == Segment.id)
        .group_by(Camera.group_name)
    )
    with index.read() as session:
        return {
            name: (int(a or 0), int(b or 0))
            for name, a, b in session.execute(statement)
        }


def _recent_and_oldest(index: Index, now_us: int) -> dict[str, tuple[int, int | None]]:
    """Group -> (bytes of segments ended in the last hour, earliest segment start)."""
    recent = func.sum(Segment.bytes).filter(
        Segment.end_us > now_us - HOUR_US, Segment.end_us <= now_us
    )
    statement = (
        select(Camera.group_name, recent, func.min(Segment.start_us))
        .select_from(Segment)
        .join(Camera, Camera.id == Segment.camera_id)
        .group_by(Camera.group_name)
    )
    with index.read() as session:
        return {
            name: (int(r or 0), oldest)
            for name, r, oldest in session.execute(statement)
        }


def forecast(
    index: Index,
    root: Path,
    s3_enabled: bool,
    clock: Callable[[], int] | None = None,
    free_bytes: int | None = None,
) -> list[GroupForecast]:
    """The forecast of every group; ``free_bytes`` defaults to the disk's free space."""
    now_us = (clock or index.clock)()
    free = int(psutil.disk_usage(str(root)).free) if free_bytes is None else free_bytes
    tiers = _tier_bytes(index)
    recent = _recent_and_oldest(index, now_us)
    with index.read() as session:
        groups = [
            (g.name, g.retention_days, g.local_days)
            for g in session.scalars(select(Group).order_by(Group.name))
        ]
    total_rate = sum(recent.get(name, (0, None))[0] for name, _, _ in groups) / 3600
    free_days = None if total_rate <= 0 else free / total_rate / 86_400
    return [
        _group(
            name,
            days,
            local_days,
            s3_enabled,
            tiers.get(name, (0, 0)),
            recent.get(name, (0, None)),
            free_days,
            now_us,
        )
        for name, days, local_days in groups
    ]


def _group(
    name: str,
    retention_days: int,
    local_days: float | None,
    s3_enabled: bool,
    tier: tuple[int, int],
    recent: tuple[int, int | None],
    free_days: float | None,
    now_us: int,
) -> GroupForecast:
    recent_bytes, oldest_us = recent
    rate = recent_bytes / 3600
    days_recorded = (
        0.0 if oldest_us is None else max(0, now_us - oldest_us) / US_PER_DAY
    )
    must_keep = float(
        local_days if s3_enabled and local_days is not None else retention_days
    )
    warning = None
    if rate > 0 and free_days is not None and days_recorded + free_days < must_keep:
        reach = days_recorded + free_days
        warning = (
            f"at the current ingest rate the disk is full in {free_days:.1f} "
            f"days: group {name} will keep about {reach:.1f} of its "
            f"{must_keep:g} days locally; add space or shorten retention"
        )
    return GroupForecast(
        name,
        retention_days,
        local_days,
        tier[0],
        tier[1],
        rate,
        days_recorded,
        free_days,
        must_keep,
        warning,
    )
