"""Startup reconciliation of one camera's files with the index.

Runs before a camera's recorder starts (at startup and when a dead worker restarts):

1. partial files left by a crash are cut back to their complete fragments, finalized and
   offered for indexing (``nvr.segmenter.recovery``);
2. closed files the index does not list are either finished deletions (their path is in
   the ``deletions`` log: a crash came between the row's removal and the unlink, so the
   unlink is completed) or segments whose row was never committed (offered for indexing).

Only date directories from the day before the camera's last indexed segment onward are
scanned: a file older than that was indexed or deleted long ago.
"""

import logging
from collections.abc import Iterator
from pathlib import Path

from nvr.errors import MediaError
from nvr.index.repo import Index
from nvr.ingest.events import SegmentClosed
from nvr.log import fields
from nvr.retention.sweeper import unlink_durably
from nvr.segmenter.files import parse_closed_start_us, quarantine
from nvr.segmenter.recovery import describe_closed, recover_partials
from nvr.timeutil import us_to_datetime

log = logging.getLogger(__name__)

DAY_US = 86_400 * 1_000_000


def _day_dirs(camera_dir: Path, since_us: int | None) -> Iterator[Path]:
    """The camera's YYYY/MM/DD directories on or after the UTC day of ``since_us``."""
    first = (0, 0, 0)
    if since_us is not None:
        day = us_to_datetime(since_us)
        first = (day.year, day.month, day.day)
    for year in sorted(
        p for p in camera_dir.glob("[0-9][0-9][0-9][0-9]") if p.is_dir()
    ):
        for month in sorted(p for p in year.glob("[0-9][0-9]") if p.is_dir()):
            for day_dir in sorted(p for p in month.glob("[0-9][0-9]") if p.is_dir()):
                if (int(year.name), int(month.name), int(day_dir.name)) >= first:
                    yield day_dir


def recover_camera(root: Path, camera_id: str, index: Index) -> list[SegmentClosed]:
    """The segments to index for ``camera_id``; finishes interrupted deletions. Blocking."""
    events = recover_partials(root, camera_id)
    last = index.last_segment(camera_id)
    since_us = None if last is None else last.start_us - DAY_US
    for day_dir in _day_dirs(root / camera_id, since_us):
        for path in sorted(day_dir.glob("*.mp4")):
            event = _reconcile_file(root, camera_id, path, index)
            if event is not None:
                events.append(event)
    return events


def _reconcile_file(
    root: Path, camera_id: str, path: Path, index: Index
) -> SegmentClosed | None:
    relative = path.relative_to(root).as_posix()
    start_us = parse_closed_start_us(path.name, camera_id)
    if start_us is None or index.segment_by_path(relative) is not None:
        return None
    if index.deletion_by_path(relative) is not None:
        unlink_durably(path)
        log.info(
            "interrupted deletion finished %s", fields(camera=camera_id, path=relative)
        )
        return None
    try:
        event = describe_closed(root, path, camera_id, start_us)
    except MediaError as exc:
        target = quarantine(root, camera_id, path)
        log.warning(
            "unindexed segment unreadable; set aside %s",
            fields(camera=camera_id, path=relative, moved_to=target.name, error=exc),
        )
        return None
    log.info("unindexed segment found %s", fields(camera=camera_id, path=relative))
    return event
