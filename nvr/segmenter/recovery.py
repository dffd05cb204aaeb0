"""Startup repair: partial files left by a crash, and closed files the index lacks.

A partial file is cut back to its last complete fragment and finalized like a normal
close (its start comes from its name, its end from its media duration). A partial file
with no complete fragment holds nothing playable and is moved to quarantine. All
functions block on disk I/O; run them before recording starts or on a thread.
"""

import logging
import os
import struct
from collections.abc import Collection
from fractions import Fraction
from pathlib import Path

from nvr.errors import MediaError
from nvr.ingest.events import SegmentClosed
from nvr.log import fields
from nvr.mp4.layout import keyframe_table, read_layout, truncate_to_complete
from nvr.mp4.moov import read_init
from nvr.segmenter.files import (
    PARTIAL_DIR,
    fsync_and_hash,
    parse_closed_start_us,
    parse_partial_name,
    quarantine,
)
from nvr.segmenter.finalize import SegmentIdentity, TrackFacts, finalize_segment
from nvr.timeutil import ticks_to_us

log = logging.getLogger(__name__)

_DATE_GLOB = "[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]/*.mp4"


_VIDEO_CODECS = {"avc1": "h264", "avc3": "h264", "hvc1": "hevc", "hev1": "hevc"}
_VISUAL_SIZE = struct.Struct(">HH")
# a visual sample entry's width and height follow its 8-byte box header, 6 reserved
# bytes, data_reference_index and 16 pre-defined/reserved bytes (ISO/IEC 14496-12 §12.1.3)
_VISUAL_SIZE_OFFSET = 8 + 6 + 2 + 16


def probe_tracks(path: Path) -> TrackFacts:
    """The codecs and picture size of a segment file, read from its moov. Blocking.

    Reads the sample entries nvr writes (avc1/hvc1 video, mp4a audio) rather than
    opening the file with FFmpeg, so recovery runs in worker processes that never load
    PyAV.
    """
    with open(path, "rb") as f:
        init, _ = read_init(f, os.fstat(f.fileno()).st_size)
    video_id = init.video_track_id
    codec = _VIDEO_CODECS.get(init.tracks[video_id].codec)
    if codec is None:
        raise MediaError(f"{path}: video sample entry {init.tracks[video_id].codec!r}")
    entry = init.stsd[video_id][16:]  # past the stsd header and its entry count
    if len(entry) < _VISUAL_SIZE_OFFSET + 4:
        raise MediaError(f"{path}: video sample entry is truncated")
    width, height = _VISUAL_SIZE.unpack_from(entry, _VISUAL_SIZE_OFFSET)
    audio = [t for t in init.tracks.values() if t.kind == "audio"]
    audio_codec = None
    if audio:
        audio_codec = "aac" if audio[0].codec == "mp4a" else audio[0].codec
    return TrackFacts(codec, audio_codec, width, height)


def recover_partials(root: Path, camera_id: str) -> list[SegmentClosed]:
    """Finalizes every partial file of a camera; returns the segments to index."""
    partial_dir = root / camera_id / PARTIAL_DIR
    if not partial_dir.is_dir():
        return []
    recovered = []
    for path in sorted(partial_dir.glob("*.mp4")):
        closed = _recover_one(root, camera_id, path)
        if closed is not None:
            recovered.append(closed)
    return recovered


def _recover_one(root: Path, camera_id: str, path: Path) -> SegmentClosed | None:
    name = parse_partial_name(path.name)
    if name is None:
        _set_aside(root, camera_id, path, "name is not a partial segment name")
        return None
    try:
        layout = truncate_to_complete(path)
        if not layout.fragments:
            _set_aside(root, camera_id, path, "no complete fragment")
            return None
        facts = probe_tracks(path)
    except MediaError as exc:
        _set_aside(root, camera_id, path, str(exc))
        return None
    identity = SegmentIdentity(camera_id, name.run_id, name.seq)
    closed = finalize_segment(root, path, identity, facts, name.start_us)
    log.info(
        "partial segment recovered %s",
        fields(
            camera=camera_id,
            segment=closed.path,
            fragments=len(layout.fragments),
            bytes=closed.bytes,
        ),
    )
    return closed


def _set_aside(root: Path, camera_id: str, path: Path, why: str) -> None:
    target = quarantine(root, camera_id, path)
    log.warning(
        "partial segment quarantined %s",
        fields(
            camera=camera_id,
            segment=path.name,
            moved_to=target.relative_to(root),
            reason=why,
        ),
    )


def orphan_segments(
    root: Path, camera_id: str, indexed_paths: Collection[str]
) -> list[SegmentClosed]:
    """Closed files of a camera that the index does not know, as events to index them.

    ``indexed_paths`` holds paths relative to ``root`` ('/' separated), as in
    SegmentClosed.path. Unreadable files are logged and skipped, never deleted.
    """
    camera_dir = root / camera_id
    orphans = []
    for path in sorted(camera_dir.glob(_DATE_GLOB)):
        relative = path.relative_to(root).as_posix()
        start_us = parse_closed_start_us(path.name, camera_id)
        if relative in indexed_paths or start_us is None:
            continue
        try:
            orphans.append(describe_closed(root, path, camera_id, start_us))
        except MediaError as exc:
            log.warning(
                "orphan segment unreadable %s",
                fields(camera=camera_id, segment=relative, error=exc),
            )
    return orphans


def describe_closed(
    root: Path, path: Path, camera_id: str, start_us: int
) -> SegmentClosed:
    """A SegmentClosed for a file already at its closed path (nothing is moved)."""
    layout = read_layout(path)
    if not layout.fragments:
        raise MediaError(f"{path}: no complete fragment")
    facts = probe_tracks(path)
    size, sha256 = fsync_and_hash(path)
    timescale = layout.video_timescale
    media_duration = layout.durations.get(layout.video_track_id, 0)
    return SegmentClosed(
        camera_id=camera_id,
        run_id=f"recovered-{start_us}",
        seq=0,
        path=path.relative_to(root).as_posix(),
        start_us=start_us,
        end_us=start_us + ticks_to_us(media_duration, Fraction(1, timescale)),
        media_start=0,
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
