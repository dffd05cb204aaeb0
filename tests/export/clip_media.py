"""Consecutive segment files cut from one FFmpeg source, described as the index would."""

import subprocess
from dataclasses import dataclass
from pathlib import Path

from nvr.export.clip import ClipSource
from nvr.mp4.layout import keyframe_table, read_layout

FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"
WALL_T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
VIDEO_CODECS = {
    "h264": ["-c:v", "libx264", "-bf", "2", "-sc_threshold", "0"],
    "h265": [
        "-c:v",
        "libx265",
        "-tag:v",
        "hvc1",
        "-x265-params",
        "log-level=error:scenecut=0:no-open-gop=1",
    ],
}


@dataclass(frozen=True)
class Recording:
    """Segments of one stream; wall time 0 of the source is ``WALL_T0_US``."""

    codec: str
    sources: list[ClipSource]
    gop_us: int


def cut_segments(
    directory: Path, codec: str, seconds: int, segment_s: int, size: str = "320x240"
) -> list[Path]:
    """A testsrc2 + sine source (25 fps, 1 s GOPs, AAC) cut into fMP4 segment files."""
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
            f"testsrc2=size={size}:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            str(seconds),
            *VIDEO_CODECS[codec],
            "-g",
            "25",
            "-keyint_min",
            "25",
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


def clip_sources(paths: list[Path], wall_start_us: int) -> list[ClipSource]:
    """ClipSources placed back to back from ``wall_start_us`` by their video durations."""
    sources = []
    start_us = wall_start_us
    for path in paths:
        layout = read_layout(path)
        ticks = layout.durations[layout.video_track_id]
        end_us = start_us + ticks * 1_000_000 // layout.video_timescale
        sources.append(
            ClipSource(
                path=path,
                start_us=start_us,
                end_us=end_us,
                timescale=layout.video_timescale,
                keyframes=keyframe_table(layout),
                size=layout.file_size,
            )
        )
        start_us = end_us
    return sources
