"""Plain frozen rows returned by the catalogue, safe to pass between threads.

ORM objects stay inside the index's sessions; callers only ever see these.
"""

import json
from dataclasses import dataclass

from nvr.index.models import Deletion, Gap, Run, Segment

Keyframes = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class SegmentRow:
    """One indexed segment; ``path`` is relative to the storage root, '/' separated."""

    id: int
    camera_id: str
    run_id: str
    seq: int
    path: str
    start_us: int
    end_us: int
    media_start: int
    media_duration: int
    timescale: int
    bytes: int
    sha256: str
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    # (video ticks from the segment's start, byte offset of the fragment starting there)
    keyframes: Keyframes
    created_us: int


@dataclass(frozen=True)
class GapRow:
    id: int
    camera_id: str
    start_us: int
    end_us: int
    reason: str
    created_us: int


@dataclass(frozen=True)
class RunRow:
    id: str
    camera_id: str
    started_us: int
    ended_us: int | None
    end_reason: str | None


@dataclass(frozen=True)
class DeletionRow:
    id: int
    camera_id: str
    segment_id: int
    path: str
    start_us: int
    end_us: int
    bytes: int
    reason: str
    deleted_us: int


def encode_keyframes(keyframes: Keyframes) -> str:
    """Compact JSON ``[[ticks,offset],...]`` as stored in ``segments.keyframes``."""
    return json.dumps(
        [[int(ticks), int(offset)] for ticks, offset in keyframes],
        separators=(",", ":"),
    )


def decode_keyframes(text: str) -> Keyframes:
    return tuple((int(ticks), int(offset)) for ticks, offset in json.loads(text))


def segment_row(segment: Segment) -> SegmentRow:
    return SegmentRow(
        id=segment.id,
        camera_id=segment.camera_id,
        run_id=segment.run_id,
        seq=segment.seq,
        path=segment.path,
        start_us=segment.start_us,
        end_us=segment.end_us,
        media_start=segment.media_start,
        media_duration=segment.media_duration,
        timescale=segment.timescale,
        bytes=segment.bytes,
        sha256=segment.sha256,
        video_codec=segment.video_codec,
        audio_codec=segment.audio_codec,
        width=segment.width,
        height=segment.height,
        keyframes=decode_keyframes(segment.keyframes),
        created_us=segment.created_us,
    )


def gap_row(gap: Gap) -> GapRow:
    return GapRow(
        id=gap.id,
        camera_id=gap.camera_id,
        start_us=gap.start_us,
        end_us=gap.end_us,
        reason=gap.reason,
        created_us=gap.created_us,
    )


def run_row(run: Run) -> RunRow:
    return RunRow(
        id=run.id,
        camera_id=run.camera_id,
        started_us=run.started_us,
        ended_us=run.ended_us,
        end_reason=run.end_reason,
    )


def deletion_row(deletion: Deletion) -> DeletionRow:
    return DeletionRow(
        id=deletion.id,
        camera_id=deletion.camera_id,
        segment_id=deletion.segment_id,
        path=deletion.path,
        start_us=deletion.start_us,
        end_us=deletion.end_us,
        bytes=deletion.bytes,
        reason=deletion.reason,
        deleted_us=deletion.deleted_us,
    )
