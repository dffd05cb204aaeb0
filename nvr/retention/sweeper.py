"""The retention sweeper: deletes segments older than their group's retention.

Procedure for one segment, in this order (see docs/design.md, "Deleting a segment"):

1. In one transaction, write the ``deletions`` row and remove the segment row.
2. Unlink the file, then fsync its directory.

A crash after step 1 leaves a file that the index no longer lists but whose path is in
``deletions``; startup reconciliation finishes the unlink instead of indexing it again.
No step leaves a segment row without its file. A segment's age is judged by its end.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nvr.index.repo import Index
from nvr.log import fields
from nvr.timeutil import format_rfc3339, wall_now_us

log = logging.getLogger(__name__)

US_PER_DAY = 86_400 * 1_000_000
BATCH = 200


@dataclass(frozen=True)
class SweepResult:
    segments: int
    bytes: int


def unlink_durably(path: Path) -> bool:
    """Removes a file and fsyncs its directory; False if it was already gone. Blocking."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return True


def sweep(
    index: Index,
    storage_root: Path,
    retention_days: dict[str, int],
    now_us: Callable[[], int] = wall_now_us,
    batch: int = BATCH,
) -> SweepResult:
    """Deletes every segment ended more than its group's retention ago. Blocking."""
    count = total_bytes = 0
    for group, days in sorted(retention_days.items()):
        cutoff_us = now_us() - days * US_PER_DAY
        while True:
            rows = index.segments_older_than(cutoff_us, batch, group=group)
            for row in rows:
                deletion = index.delete_segment_row(row.id, "retention", now_us())
                if deletion is None:
                    continue
                unlink_durably(storage_root / row.path)
                count += 1
                total_bytes += row.bytes
                log.info(
                    "segment deleted %s",
                    fields(
                        camera=row.camera_id,
                        segment=row.id,
                        reason="retention",
                        group=group,
                        start=format_rfc3339(row.start_us),
                        end=format_rfc3339(row.end_us),
                        bytes=row.bytes,
                    ),
                )
            if len(rows) < batch:
                break
    return SweepResult(count, total_bytes)
