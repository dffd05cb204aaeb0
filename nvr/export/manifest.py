"""The manifest of an evidence package: what was asked for, what it holds, and from where.

Built from index rows and the written files; signed as canonical JSON by
``nvr.export.package``. docs/evidence.md describes every field.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nvr.evidence.format import FORMAT
from nvr.index.rows import GapRow, SegmentRow
from nvr.timeutil import format_rfc3339

NO_RECORDING = "no recording"


@dataclass(frozen=True)
class ExportFacts:
    """Everything the manifest states that is known before the video is written."""

    export_id: str
    camera_id: str
    camera_group: str | None
    case_id: str
    reason: str
    exported_by: str
    requested_start_us: int
    requested_end_us: int
    segments: tuple[SegmentRow, ...]
    chain_hashes: dict[int, str | None]
    gaps: tuple[tuple[int, int, str], ...]
    nvr_version: str
    key_sha256: str


@dataclass(frozen=True)
class PackedFile:
    name: str
    size: int
    sha256: str
    media_type: str


def _span(start_us: int, end_us: int) -> dict[str, Any]:
    return {
        "start": format_rfc3339(start_us),
        "end": format_rfc3339(end_us),
        "start_us": start_us,
        "end_us": end_us,
    }


def range_gaps(
    segments: Sequence[SegmentRow], gaps: Sequence[GapRow], start_us: int, end_us: int
) -> tuple[tuple[int, int, str], ...]:
    """Every interval of ``[start_us, end_us)`` no segment covers, with the index's reason.

    Computed from the segments themselves, so time before the first or after the last
    recording is listed too; the reason is that of an index gap overlapping it, else
    "no recording".
    """
    holes: list[tuple[int, int]] = []
    cursor_us = start_us
    for segment in sorted(segments, key=lambda s: s.start_us):
        if segment.start_us > cursor_us:
            holes.append((cursor_us, min(segment.start_us, end_us)))
        cursor_us = max(cursor_us, segment.end_us)
    if cursor_us < end_us:
        holes.append((cursor_us, end_us))
    return tuple(
        (hole_start, hole_end, _reason(gaps, hole_start, hole_end))
        for hole_start, hole_end in holes
        if hole_end > hole_start
    )


def _reason(gaps: Sequence[GapRow], start_us: int, end_us: int) -> str:
    for gap in gaps:
        if gap.start_us < end_us and gap.end_us > start_us:
            return gap.reason
    return NO_RECORDING


def build_manifest(
    facts: ExportFacts,
    actual_start_us: int,
    actual_end_us: int,
    files: Sequence[PackedFile],
    created_us: int,
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict of strings, integers, lists and dicts only."""
    return {
        "format": FORMAT,
        "export_id": facts.export_id,
        "nvr_version": facts.nvr_version,
        "created": format_rfc3339(created_us),
        "created_us": created_us,
        "exported_by": facts.exported_by,
        "case_id": facts.case_id,
        "reason": facts.reason,
        "camera": {"id": facts.camera_id, "group": facts.camera_group},
        "requested": _span(facts.requested_start_us, facts.requested_end_us),
        "actual": _span(actual_start_us, actual_end_us),
        "segments": [
            _segment(segment, facts.chain_hashes.get(segment.id))
            for segment in facts.segments
        ],
        "gaps": [
            {**_span(start_us, end_us), "reason": reason}
            for start_us, end_us, reason in facts.gaps
        ],
        "files": [
            {
                "name": f.name,
                "bytes": f.size,
                "sha256": f.sha256,
                "media_type": f.media_type,
            }
            for f in files
        ],
        "signing_key": {"algorithm": "Ed25519", "sha256": facts.key_sha256},
    }


def _segment(segment: SegmentRow, chain_hash: str | None) -> dict[str, Any]:
    return {
        **_span(segment.start_us, segment.end_us),
        "id": segment.id,
        "run_id": segment.run_id,
        "path": segment.path,
        "bytes": segment.bytes,
        "sha256": segment.sha256,
        "chain_hash": chain_hash,
        "video_codec": segment.video_codec,
        "audio_codec": segment.audio_codec,
    }
