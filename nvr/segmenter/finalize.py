"""Turning a written partial file into a durable closed segment and its SegmentClosed.

The procedure, in order (a crash between steps leaves a state recovery handles):

1. the muxer has written the trailer and the file is closed (or, in recovery, the file
   was truncated to its last complete fragment);
2. fsync the file, then hash it (SHA-256, streamed);
3. read its fragment table (nvr.mp4.layout) for the keyframe table and media duration;
4. rename it to its closed path (UTC date of its start), creating and fsyncing any new
   date directories, then fsync the old and new directory;
5. only then return the SegmentClosed that lets the supervisor index it.

Blocking throughout; callers on an event loop use a thread.
"""

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from nvr.ingest.events import SegmentClosed
from nvr.log import fields
from nvr.mp4.layout import keyframe_table, read_layout
from nvr.segmenter.files import closed_path, fsync_and_hash, rename_durable
from nvr.timeutil import ticks_to_us

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackFacts:
    """What a segment's tracks carry, for the index."""

    video_codec: str
    audio_codec: str | None
    width: int
    height: int


@dataclass(frozen=True)
class SegmentIdentity:
    """Which run a segment belongs to and where it sits in it."""

    camera_id: str
    run_id: str
    seq: int
    media_start: int = 0  # video ticks of media_time_base from the run's start
    media_time_base: Fraction = Fraction(1, 90000)


def finalize_segment(
    root: Path,
    partial: Path,
    identity: SegmentIdentity,
    facts: TrackFacts,
    start_us: int,
    end_us: int | None = None,
) -> SegmentClosed:
    """Makes ``partial`` a closed segment starting at ``start_us``; returns its event.

    ``end_us`` defaults to ``start_us`` plus the file's video duration. Blocking.
    """
    size, sha256 = fsync_and_hash(partial)
    layout = read_layout(partial)
    timescale = layout.video_timescale
    media_duration = layout.durations.get(layout.video_track_id, 0)
    if end_us is None:
        end_us = start_us + ticks_to_us(media_duration, Fraction(1, timescale))

    target = closed_path(root, identity.camera_id, start_us)
    rename_durable(partial, target)
    return SegmentClosed(
        camera_id=identity.camera_id,
        run_id=identity.run_id,
        seq=identity.seq,
        path=target.relative_to(root).as_posix(),
        start_us=start_us,
        end_us=end_us,
        media_start=round(identity.media_start * identity.media_time_base * timescale),
        media_duration=media_duration,
        timescale=timescale,
        bytes=size,
        sha256=sha256,
        video_codec=facts.video_codec,
        audio_codec=facts.audio_codec,
        width=facts.width,
        height=facts.height,
        keyframes=keyframe_table(layout),
    )


def log_closed(closed: SegmentClosed) -> None:
    """The one INFO line for a segment made durable, whichever writer made it."""
    log.info(
        "segment closed %s",
        fields(
            camera=closed.camera_id,
            segment=closed.path,
            run=closed.run_id,
            seq=closed.seq,
            bytes=closed.bytes,
            media_duration=closed.media_duration,
            timescale=closed.timescale,
        ),
    )
