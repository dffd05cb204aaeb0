"""Real segment files for the storage tests, indexed as the supervisor would."""

import asyncio
import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nvr.config import CameraConfig, GroupConfig
from nvr.ingest.events import SegmentClosed
from nvr.mp4.layout import keyframe_table, read_layout

WALL_T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
GROUPS = (
    GroupConfig(name="general", retention_days=30, local_days=3),
    GroupConfig(name="key-area", retention_days=90),
)
CAMERAS = (CameraConfig(id="cam1", url="rtsp://127.0.0.1/a", group="general"),)
T = TypeVar("T")
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"


def cut_segments(directory: Path, seconds: int = 24, segment_s: int = 8) -> list[Path]:
    """An H.264 + AAC testsrc2 recording (1 s GOPs) cut into fragmented MP4 files."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-f",
            "segment",
            "-segment_time",
            str(segment_s),
            "-reset_timestamps",
            "1",
            "-segment_format",
            "mp4",
            "-segment_format_options",
            f"movflags={FRAGMENTED}",
            str(directory / "seg%03d.mp4"),
        ],
        check=True,
    )
    return sorted(directory.glob("seg*.mp4"))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def place_segment(
    root: Path,
    source: Path,
    camera_id: str,
    seq: int,
    start_us: int,
    run_id: str = "run-a",
) -> SegmentClosed:
    """Copies a real segment file into the storage layout; returns its SegmentClosed."""
    layout = read_layout(source)
    ticks = layout.durations[layout.video_track_id]
    end_us = start_us + ticks * 1_000_000 // layout.video_timescale
    relative = f"{camera_id}/2026/01/01/{camera_id}-{start_us}.mp4"
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    return SegmentClosed(
        camera_id=camera_id,
        run_id=run_id,
        seq=seq,
        path=relative,
        start_us=start_us,
        end_us=end_us,
        media_start=0,
        media_duration=ticks,
        timescale=layout.video_timescale,
        bytes=layout.file_size,
        sha256=sha256_file(target),
        video_codec="h264",
        audio_codec="aac",
        width=320,
        height=240,
        keyframes=keyframe_table(layout),
    )


def place_blob(
    root: Path,
    camera_id: str,
    seq: int,
    start_us: int,
    size: int,
    run_id: str = "run-b",
) -> SegmentClosed:
    """A large file of random bytes indexed as a segment (for multipart uploads)."""
    relative = f"{camera_id}/2026/01/01/{camera_id}-{start_us}.mp4"
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(os.urandom(size))
    return SegmentClosed(
        camera_id=camera_id,
        run_id=run_id,
        seq=seq,
        path=relative,
        start_us=start_us,
        end_us=start_us + 60_000_000,
        media_start=0,
        media_duration=60 * 90_000,
        timescale=90_000,
        bytes=size,
        sha256=sha256_file(target),
        video_codec="h264",
        audio_codec=None,
        width=1280,
        height=720,
        keyframes=((0, 1024),),
    )


async def index_call(function: Callable[..., T], *args: Any) -> T:
    """The server's ``index_call`` for tests: the blocking index function in a thread."""
    return await asyncio.to_thread(function, *args)
