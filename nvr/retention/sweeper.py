"""The retention sweeper: deletes segments older than their group's retention.

A segment's age is judged by its end, in UTC: it goes once ``end_us`` is more than its
group's ``retention_days`` before now. Each segment is deleted from every tier by
``nvr.retention.deleter`` (mark, delete file and object, remove row). A pass first
finishes deletions left half done, then deletes in batches of ``batch``, at most
``max_segments`` per pass so one pass never holds the index thread for long.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nvr.index.repo import Index
from nvr.log import fields
from nvr.retention import catalogue
from nvr.retention.deleter import Deleter, ObjectDeleter, StepHook, unlink_durably
from nvr.retention.plan import cutoff_us
from nvr.timeutil import wall_now_us

log = logging.getLogger(__name__)

US_PER_DAY = catalogue.US_PER_DAY
BATCH = 200
MAX_SEGMENTS_PER_PASS = 5000

__all__ = ["SweepResult", "sweep", "unlink_durably"]


@dataclass(frozen=True)
class SweepResult:
    segments: int
    bytes: int
    blocked: int = 0  # marked, but S3 refused to delete the object (Object Lock)


def sweep(
    index: Index,
    storage_root: Path,
    retention_days: dict[str, int] | None = None,
    now_us: Callable[[], int] = wall_now_us,
    batch: int = BATCH,
    *,
    store: ObjectDeleter | None = None,
    max_segments: int = MAX_SEGMENTS_PER_PASS,
    step_hook: StepHook | None = None,
) -> SweepResult:
    """Deletes every unheld segment ended more than its group's retention ago. Blocking.

    ``retention_days`` defaults to the groups in the index. Held segments are skipped
    (the selection excludes them and the mark re-checks inside its transaction).
    """
    deleter = Deleter(index, storage_root, store, now_us, step_hook=step_hook)
    finished = deleter.complete_marked()
    if finished:
        log.info("interrupted deletions finished %s", fields(segments=finished))
    days_by_group = (
        index.group_retention_days() if retention_days is None else retention_days
    )
    count = total_bytes = blocked = 0
    at_us = now_us()
    for group, days in sorted(days_by_group.items()):
        while count + blocked < max_segments:
            rows = catalogue.due_for_retention(
                index,
                group,
                cutoff_us(at_us, days),
                min(batch, max_segments - count - blocked),
            )
            for row in rows:
                outcome = deleter.delete(row.segment_id, "retention")
                if outcome.deletion is not None:
                    count += 1
                    total_bytes += outcome.deletion.bytes
                blocked += outcome.result == "blocked"
            if len(rows) < batch:
                break
    if count or blocked:
        log.info(
            "retention sweep done %s",
            fields(segments=count, bytes=total_bytes, blocked=blocked),
        )
    return SweepResult(count, total_bytes, blocked)
