"""The retention sweeper: deletes segments older than their group's retention.

A segment's age is judged by its end, in UTC: it goes once ``end_us`` is more than its
group's ``retention_days`` before now. Segments are deleted from every tier by
``nvr.retention.deleter`` a batch at a time (mark the batch, delete files and objects,
remove the rows). A pass first finishes deletions left half done, then deletes in
batches of ``batch``, at most ``max_segments`` per pass so one pass never holds the
index thread for long; ``SweepResult.more`` says the bound cut the pass short.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nvr.index.repo import Index
from nvr.log import fields
from nvr.retention import catalogue
from nvr.retention.deleter import (
    OBJECTS_PER_REQUEST,
    Deleter,
    ObjectDeleter,
    StepHook,
    unlink_durably,
)
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
    more: bool = False  # max_segments ended the pass; more may be due


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
    objects_per_request: int = OBJECTS_PER_REQUEST,
) -> SweepResult:
    """Deletes every unheld segment ended more than its group's retention ago. Blocking.

    ``retention_days`` defaults to the groups in the index. Held segments are skipped
    (the selection excludes them and the mark re-checks inside its transaction).
    """
    deleter = Deleter(
        index,
        storage_root,
        store,
        now_us,
        step_hook=step_hook,
        objects_per_request=objects_per_request,
    )
    finished = deleter.complete_marked(batch)
    if finished:
        log.info("interrupted deletions finished %s", fields(segments=finished))
    days_by_group = (
        index.group_retention_days() if retention_days is None else retention_days
    )
    count = total_bytes = blocked = 0
    more = False
    at_us = now_us()
    for group, days in sorted(days_by_group.items()):
        after: tuple[int, int] | None = None
        while True:
            room = max_segments - count - blocked
            if room <= 0:
                more = True
                break
            rows = catalogue.due_for_retention(
                index, group, cutoff_us(at_us, days), min(batch, room), after=after
            )
            if not rows:
                break
            outcome = deleter.delete_batch(
                [row.segment_id for row in rows], "retention"
            )
            count += len(outcome.deletions)
            total_bytes += sum(deletion.bytes for deletion in outcome.deletions)
            blocked += len(outcome.blocked)
            if len(rows) < min(batch, room):
                break
            after = (rows[-1].end_us, rows[-1].segment_id)
    if count or blocked:
        log.info(
            "retention sweep done %s",
            fields(segments=count, bytes=total_bytes, blocked=blocked, more=more),
        )
    return SweepResult(count, total_bytes, blocked, more)
