"""Invariants the reliability tests check against a recorder's storage and index."""

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

from nvr.index.db import open_index
from nvr.index.rows import SegmentRow
from nvr.timeutil import format_rfc3339, parse_rfc3339_us

EVER = (0, 2**62)


def indexed_rows(recorder: Any, camera_id: str) -> list[SegmentRow]:
    """Every indexed segment of the camera, by start, read straight from the index."""
    index = open_index(recorder.index_url)
    try:
        return list(index.segments_overlapping(camera_id, *EVER))
    finally:
        index.close()


def assert_rows_match_files(recorder: Any, camera_id: str) -> list[SegmentRow]:
    """Each index row has its file, with the hash the row records; no two rows overlap."""
    rows = indexed_rows(recorder, camera_id)
    for row in rows:
        path = recorder.storage / row.path
        assert path.is_file(), f"row {row.id} has no file {row.path}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256, row.path
        assert row.end_us > row.start_us, row
    for before, after in itertools.pairwise(rows):
        assert after.start_us >= before.end_us, f"overlap: {before.path} / {after.path}"
    return rows


def closed_files(recorder: Any, camera_id: str) -> set[str]:
    """Closed segment files on disk (quarantine and partial excluded), root-relative."""
    camera_dir: Path = recorder.storage / camera_id
    return {
        p.relative_to(recorder.storage).as_posix()
        for p in camera_dir.glob("[0-9][0-9][0-9][0-9]/*/*/*.mp4")
    }


def unindexed_files(recorder: Any, camera_id: str) -> set[str]:
    """Closed files on disk that no index row lists."""
    indexed = {row.path for row in indexed_rows(recorder, camera_id)}
    return closed_files(recorder, camera_id) - indexed


def recordings(recorder: Any, camera_id: str, start: str, end: str) -> dict[str, Any]:
    """The recordings listing through the API (start/end as RFC 3339 with any offset)."""
    from urllib.parse import quote

    path = (
        f"/api/v1/cameras/{camera_id}/recordings?start={quote(start)}&end={quote(end)}"
    )
    status, _, body = recorder.get(path)
    assert status == 200, body
    return dict(json.loads(body))


def listing_since(
    recorder: Any, camera_id: str, since_us: int, until_us: int
) -> dict[str, Any]:
    return recordings(
        recorder, camera_id, format_rfc3339(since_us), format_rfc3339(until_us)
    )


def camera(recorder: Any, camera_id: str) -> dict[str, Any]:
    """The camera's entry in GET /api/v1/cameras."""
    cameras = recorder.get_json("/api/v1/cameras").get("cameras", [])
    found = [c for c in cameras if c["id"] == camera_id]
    return dict(found[0]) if found else {}


def state(recorder: Any, camera_id: str) -> str:
    return str(camera(recorder, camera_id).get("state", "unknown"))


def assert_sane_segments(segments: list[dict[str, Any]], segment_s: float) -> None:
    """No overlap, no negative or absurdly long segment (the "lasts for days" class)."""
    spans = [
        (parse_rfc3339_us(s["start"]), parse_rfc3339_us(s["end"]), s) for s in segments
    ]
    for start, end, seg in spans:
        assert 0 < end - start <= (segment_s + 3) * 1_000_000, seg
        assert seg["media_duration_s"] <= segment_s + 3, seg
    for (_, prev_end, prev), (start, _, seg) in itertools.pairwise(spans):
        assert start >= prev_end, f"overlap: {prev} then {seg}"
