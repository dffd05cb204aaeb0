"""Playback benchmark: ``video.mp4`` for 1 min, 1 h and 24 h next to raw disk reads.

    python perf/playback.py [--ranges 1m,1h,24h] [--json]

One real 60 s fragmented MP4 segment (720p 25 fps 1.5 Mbit/s H.264, cut by ffmpeg with
``frag_keyframe+empty_moov+default_base_moof``) is hard-linked at every minute of 24 hours
under a temporary storage root and indexed into a temporary SQLite index through
``Index.add_segment``. nvr's aiohttp app (``make_app``, admin token via ``nvr.auth``)
serves it in this process; an aiohttp client in the same process asks for each range and
reads the body to the end. The baseline reads the same segment files with plain
256 KiB ``read`` calls. Every link shares one inode, so both read from the page cache:
this measures nvr's serving path, not the disk.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from aiohttp import web

from nvr.api.app import ApiContext, make_app
from nvr.auth.permissions import Role
from nvr.auth.tokens import create_token
from nvr.config import CameraConfig, Config, StorageConfig
from nvr.index.db import open_index
from nvr.index.repo import Index
from nvr.segmenter.files import closed_path
from nvr.segmenter.recovery import describe_closed
from nvr.timeutil import format_rfc3339

T = TypeVar("T")
CAMERA = "cam0"
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
CHUNK = 256 * 1024
RANGES_S = {"1m": 60, "10m": 600, "1h": 3600, "24h": 86400}


@dataclass
class Row:
    range: str
    reader: str
    segments: int
    bytes: int
    ttfb_ms: float
    seconds: float
    mb_per_s: float


def make_segment(path: Path, seconds: int) -> Path:
    """A real fMP4 segment of ``seconds`` (from the ingest benchmark's cached clip)."""
    from ingest import CLIP
    from rtsp_source import make_clip

    make_clip(CLIP, 10, 1500)
    subprocess.run(
        [
            "/usr/bin/ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-stream_loop",
            "-1",
            "-i",
            str(CLIP),
            "-t",
            str(seconds),
            "-c",
            "copy",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
            "-f",
            "mp4",
            str(path),
        ],
        check=True,
    )
    return path


def build_store(root: Path, index: Index, minutes: int) -> None:
    """Links one real segment at every minute and indexes each link. Blocking."""
    first = closed_path(root, CAMERA, START_US)
    first.parent.mkdir(parents=True, exist_ok=True)
    make_segment(first, 60)
    event = describe_closed(root, first, CAMERA, START_US)
    event = replace(event, run_id="perf-run")
    duration_us = event.end_us - event.start_us
    for minute in range(minutes):
        start_us = START_US + minute * duration_us
        path = closed_path(root, CAMERA, start_us)
        if minute:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(first, path)
        index.add_segment(
            replace(
                event,
                seq=minute,
                path=path.relative_to(root).as_posix(),
                start_us=start_us,
                end_us=start_us + duration_us,
                media_start=minute * event.media_duration,
            )
        )


def raw_read(
    root: Path, index: Index, start_us: int, end_us: int
) -> tuple[int, int, float, float]:
    """(segments, bytes, ttfb s, total s) reading the range's segment files raw."""
    rows = index.segments_overlapping(CAMERA, start_us, end_us)
    began = time.perf_counter()
    ttfb = None
    total = 0
    for row in rows:
        with open(root / row.path, "rb", buffering=0) as f:
            while chunk := f.read(CHUNK):
                ttfb = time.perf_counter() - began if ttfb is None else ttfb
                total += len(chunk)
    return len(rows), total, ttfb or 0.0, time.perf_counter() - began


async def http_read(
    session: aiohttp.ClientSession, base: str, token: str, start_us: int, end_us: int
) -> tuple[int, float, float]:
    """(bytes, ttfb s, total s) of one video.mp4 request read to the end."""
    query = {"start": format_rfc3339(start_us), "end": format_rfc3339(end_us)}
    began = time.perf_counter()
    ttfb = None
    total = 0
    async with session.get(
        f"{base}/api/v1/cameras/{CAMERA}/video.mp4",
        params=query,
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_chunked(CHUNK):
            ttfb = time.perf_counter() - began if ttfb is None else ttfb
            total += len(chunk)
    return total, ttfb or 0.0, time.perf_counter() - began


async def run(args: argparse.Namespace, tmp: Path) -> list[Row]:
    ranges = [(name, RANGES_S[name]) for name in args.ranges.split(",")]
    minutes = max(seconds for _n, seconds in ranges) // 60 + 1
    root = tmp / "segments"
    config = Config(
        storage=StorageConfig(root=root),
        cameras=(CameraConfig(id=CAMERA, url="rtsp://127.0.0.1/x"),),
    )
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index")
    loop = asyncio.get_running_loop()

    def index_call(function: Callable[..., T], *call_args: Any) -> "asyncio.Future[T]":
        return loop.run_in_executor(pool, function, *call_args)

    index = await index_call(open_index, f"sqlite:///{tmp / 'index.db'}")
    await index_call(index.sync_groups_and_cameras, config.groups, config.cameras)
    await index_call(build_store, root, index, minutes)
    token = await index_call(create_token, index, "perf", Role.ADMIN)

    runner = web.AppRunner(
        make_app(ApiContext(config, {}, index, index_call)), access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rows = []
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None)
        ) as session:
            for name, seconds in ranges:
                end_us = START_US + seconds * 1_000_000
                segments, size, ttfb, total = await index_call(
                    raw_read, root, index, START_US, end_us
                )
                rows.append(
                    Row(
                        name,
                        "raw read",
                        segments,
                        size,
                        round(ttfb * 1000, 2),
                        round(total, 3),
                        round(size / total / 2**20, 1),
                    )
                )
                size, ttfb, total = await http_read(
                    session, f"http://127.0.0.1:{port}", token, START_US, end_us
                )
                rows.append(
                    Row(
                        name,
                        "video.mp4",
                        segments,
                        size,
                        round(ttfb * 1000, 2),
                        round(total, 3),
                        round(size / total / 2**20, 1),
                    )
                )
    finally:
        await runner.cleanup()
        await index_call(index.close)
        pool.shutdown()
    return rows


def table(rows: list[Row]) -> str:
    heads = ("range", "reader", "segments", "bytes", "ttfb ms", "seconds", "MiB/s")
    cells = [list(heads)] + [
        [
            r.range,
            r.reader,
            str(r.segments),
            str(r.bytes),
            str(r.ttfb_ms),
            str(r.seconds),
            str(r.mb_per_s),
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(heads))]
    lines = [
        " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
        for row in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="video.mp4 vs raw reads")
    parser.add_argument(
        "--ranges",
        default="1m,1h,24h",
        help=f"comma-separated, from {', '.join(RANGES_S)}",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nvr-perf-playback-") as tmp:
        rows = asyncio.run(run(args, Path(tmp)))
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows]}))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
