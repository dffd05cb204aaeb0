"""A real archive for the evidence tests: FFmpeg-cut fMP4 segments indexed in SQLite.

Camera cam1 has two runs: A (3 segments of 4 s) and, after a 5 s outage, B (2 segments).
"""

import asyncio
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvr.config import Config
from nvr.index import Index, open_index
from nvr.ingest.events import SegmentClosed
from nvr.mp4.layout import keyframe_table, read_layout

WALL_T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000
GAP_US = 5 * S
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"


def cut_segments(
    directory: Path, seconds: int, segment_s: int, offset_s: int
) -> list[Path]:
    """testsrc2 + sine (25 fps, 1 s GOPs, H.264 + AAC) from ``offset_s``, cut into fMP4."""
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
            "-ss",
            str(offset_s),
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-bf",
            "0",
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


@dataclass
class Archive:
    config: Config
    index: Index
    root: Path
    segment_ids: list[int]  # in time order: run A then run B
    run_a_end_us: int
    run_b_start_us: int
    end_us: int

    def path_of(self, segment_id: int) -> Path:
        row = self.index.segment_by_id(segment_id)
        assert row is not None
        return self.root / row.path


def make_config(tmp_path: Path, index_url: str | None = None) -> Config:
    """cam1 under ``tmp_path/var``; the index is SQLite there unless ``index_url``."""
    return Config.model_validate(
        {
            "storage": {"root": str(tmp_path / "var" / "segments")},
            "index": {"url": index_url or f"sqlite:///{tmp_path / 'var' / 'index.db'}"},
            "cameras": [{"id": "cam1", "url": "rtsp://user:pw@127.0.0.1:1/a"}],
        }
    )


def index_run(
    index: Index, root: Path, files: list[Path], run_id: str, start_us: int
) -> tuple[list[int], int]:
    """Copies the files into the storage layout and indexes them back to back."""
    ids = []
    for seq, source in enumerate(files):
        layout = read_layout(source)
        ticks = layout.durations[layout.video_track_id]
        end_us = start_us + ticks * S // layout.video_timescale
        relative = f"cam1/2026/01/01/cam1-{start_us}.mp4"
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        data = target.read_bytes()
        ids.append(
            index.add_segment(
                SegmentClosed(
                    camera_id="cam1",
                    run_id=run_id,
                    seq=seq,
                    path=relative,
                    start_us=start_us,
                    end_us=end_us,
                    media_start=0,
                    media_duration=ticks,
                    timescale=layout.video_timescale,
                    bytes=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    video_codec="h264",
                    audio_codec="aac",
                    width=320,
                    height=240,
                    keyframes=keyframe_table(layout),
                )
            )
        )
        start_us = end_us
    return ids, start_us


def build_archive(
    tmp_path: Path, media: dict[str, list[Path]], index_url: str | None = None
) -> Archive:
    config = make_config(tmp_path, index_url)
    root = Path(config.storage.root)
    index = open_index(config.index.url)
    index.sync_groups_and_cameras(config.groups, config.cameras)
    ids_a, end_a = index_run(index, root, media["a"], "run-a", WALL_T0_US)
    index.end_run("cam1", "run-a", end_a, "disconnected")
    ids_b, end_b = index_run(index, root, media["b"], "run-b", end_a + GAP_US)
    return Archive(config, index, root, ids_a + ids_b, end_a, end_a + GAP_US, end_b)


async def index_call(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)
