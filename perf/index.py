"""Index benchmark: a synthetic catalogue of R segments on SQLite and on PostgreSQL.

    python perf/index.py --rows R [--json]

Layout: 1-minute segments, back to back, for up to 500 cameras (fewer when R is small:
R // 1440 cameras, so each has at least a day), as many days as R needs; one run per
camera per day. The schema is nvr's own (``open_index`` migrates a fresh database); rows
go in with bulk inserts (``executemany`` on SQLite, ``COPY`` on PostgreSQL).

Reported per backend: load time, p50/p99 of the API's 1 h recordings query (segments and
gaps overlapping one hour of one random camera, through ``nvr.index.Index``), and one
day's retention sweep: the real sweeper (``nvr.retention.sweeper.sweep``: batches of
segments marked, unlinked and removed with their deletion log and audit rows) timed
over ``--sweep-sample`` segments and projected to the day, plus one set-based
``DELETE`` of the whole day (no files, no log) as the floor. PostgreSQL runs in a
fresh database on 127.0.0.1:5432, dropped afterwards.
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from nvr.config import CameraConfig, GroupConfig
from nvr.index.db import open_index
from nvr.index.repo import Index

DAY_US = 86_400_000_000
SEGMENT_US = 60_000_000
EPOCH_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
COLUMNS = (
    "camera_id",
    "run_id",
    "seq",
    "path",
    "start_us",
    "end_us",
    "media_start",
    "media_duration",
    "timescale",
    "bytes",
    "sha256",
    "video_codec",
    "audio_codec",
    "width",
    "height",
    "keyframes",
    "created_us",
    "chain_hash",
)


@dataclass
class Result:
    backend: str
    rows: int
    cameras: int
    days: float
    load_s: float
    query_p50_ms: float
    query_p99_ms: float
    sweep_rows_per_s: float
    sweep_day_projected_s: float
    bulk_delete_day_s: float
    bulk_deleted_rows: int  # the day's rows left after the sweeper's sample
    day_rows: int


def layout(rows: int) -> tuple[int, int]:
    """(cameras, segments per camera)."""
    cameras = max(1, min(500, rows // 1440))
    return cameras, -(-rows // cameras)


def segment_rows(rows: int) -> Iterator[tuple[Any, ...]]:
    cameras, per_camera = layout(rows)
    made = 0
    keyframes = json.dumps([[0, 1000]])
    sha = "ab" * 32
    for seq in range(per_camera):
        start_us = EPOCH_US + seq * SEGMENT_US
        day = seq // 1440
        for camera in range(cameras):
            if made == rows:
                return
            made += 1
            yield (
                f"cam{camera:03d}",
                f"run-{camera:03d}-{day}",
                seq,
                f"cam{camera:03d}/{start_us}.mp4",
                start_us,
                start_us + SEGMENT_US,
                seq * 5_400_000,
                5_400_000,
                90000,
                11_250_000,
                sha,
                "h264",
                None,
                1280,
                720,
                keyframes,
                start_us + SEGMENT_US,
                sha,
            )


def run_rows(rows: int) -> list[tuple[Any, ...]]:
    cameras, per_camera = layout(rows)
    days = -(-per_camera // 1440)
    return [
        (f"run-{c:03d}-{d}", f"cam{c:03d}", EPOCH_US + d * DAY_US, None, None)
        for c in range(cameras)
        for d in range(days)
    ]


def open_fresh(url: str, rows: int) -> Index:
    index = open_index(url)
    cameras, _ = layout(rows)
    index.sync_groups_and_cameras(
        (GroupConfig(name="general", retention_days=1),),
        tuple(
            CameraConfig(id=f"cam{c:03d}", url="rtsp://127.0.0.1/x")
            for c in range(cameras)
        ),
    )
    return index


def load(index: Index, rows: int, postgres: bool) -> float:
    """Bulk-inserts runs and segments; returns the seconds it took."""
    started = time.monotonic()
    raw = index.engine.raw_connection() if hasattr(index, "engine") else None
    if raw is None:
        raise RuntimeError("Index exposes no engine")
    try:
        cursor = raw.cursor()
        runs_sql = "INSERT INTO runs (id, camera_id, started_us, ended_us, end_reason) "
        marks = ", ".join(["%s" if postgres else "?"] * len(COLUMNS))
        if postgres:
            cursor.executemany(runs_sql + "VALUES (%s, %s, %s, %s, %s)", run_rows(rows))
            with cursor.copy(
                f"COPY segments ({', '.join(COLUMNS)}) FROM STDIN"
            ) as copy:
                for row in segment_rows(rows):
                    copy.write_row(row)
        else:
            # the engine runs pysqlite in autocommit mode and begins transactions itself
            cursor.execute("BEGIN")
            cursor.executemany(runs_sql + "VALUES (?, ?, ?, ?, ?)", run_rows(rows))
            sql = f"INSERT INTO segments ({', '.join(COLUMNS)}) VALUES ({marks})"
            batch: list[tuple[Any, ...]] = []
            for row in segment_rows(rows):
                batch.append(row)
                if len(batch) == 50_000:
                    cursor.executemany(sql, batch)
                    batch.clear()
            cursor.executemany(sql, batch)
            cursor.execute("COMMIT")
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return time.monotonic() - started


def query_times(index: Index, rows: int, queries: int) -> list[float]:
    """Milliseconds of each 1 h recordings query (segments + gaps), random camera/hour."""
    cameras, per_camera = layout(rows)
    span_us = per_camera * SEGMENT_US
    rng = random.Random(6)
    out = []
    for _ in range(queries):
        camera = f"cam{rng.randrange(cameras):03d}"
        start_us = EPOCH_US + rng.randrange(max(1, span_us - 3600_000_000))
        began = time.perf_counter()
        index.segments_overlapping(camera, start_us, start_us + 3600_000_000)
        index.gaps_overlapping(camera, start_us, start_us + 3600_000_000)
        out.append(1000 * (time.perf_counter() - began))
    return out


def sweep_rate(index: Index, sample: int) -> float:
    """Segments per second the real sweeper deletes (first day, ``sample`` of them)."""
    from nvr.retention.sweeper import sweep

    with tempfile.TemporaryDirectory() as root:
        began = time.monotonic()
        result = sweep(
            index,
            Path(root),
            {"general": 1},
            now_us=lambda: EPOCH_US + 2 * DAY_US,
            max_segments=sample,
        )
        elapsed = time.monotonic() - began
    return result.segments / elapsed if elapsed > 0 else 0.0


def bulk_delete_day(index: Index) -> tuple[float, int]:
    """Seconds for one DELETE of every segment ending within the first day, and its rows."""
    began = time.monotonic()
    with index.engine.begin() as connection:
        deleted = connection.execute(
            text("DELETE FROM segments WHERE end_us <= :cutoff"),
            {"cutoff": EPOCH_US + DAY_US},
        ).rowcount
    return time.monotonic() - began, int(deleted)


def bench(backend: str, url: str, args: argparse.Namespace) -> Result:
    index = open_fresh(url, args.rows)
    try:
        load_s = load(index, args.rows, backend == "postgresql")
        times = query_times(index, args.rows, args.queries)
        cameras, per_camera = layout(args.rows)
        day_rows = cameras * min(1440, per_camera)
        rate = sweep_rate(index, min(args.sweep_sample, day_rows))
        bulk_s, deleted = bulk_delete_day(index)
    finally:
        index.close()
    quantiles = statistics.quantiles(times, n=100)
    return Result(
        backend,
        args.rows,
        cameras,
        round(per_camera / 1440, 2),
        round(load_s, 1),
        round(quantiles[49], 3),
        round(quantiles[98], 3),
        round(rate, 1),
        round(day_rows / rate, 1) if rate else -1.0,
        round(bulk_s, 3),
        deleted,
        day_rows,
    )


def postgres_database() -> tuple[str, Any]:
    """Creates a scratch database; returns its URL and a function dropping it."""
    import psycopg

    name = f"nvr_perf_{int(time.time())}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def table(results: list[Result]) -> str:
    heads = (
        "backend",
        "rows",
        "cameras",
        "days",
        "load s",
        "1h query p50 ms",
        "p99 ms",
        "sweep seg/s",
        "sweep 1 day s (proj.)",
        "bulk DELETE 1 day s",
    )
    cells = [list(heads)] + [
        [
            r.backend,
            str(r.rows),
            str(r.cameras),
            str(r.days),
            str(r.load_s),
            str(r.query_p50_ms),
            str(r.query_p99_ms),
            str(r.sweep_rows_per_s),
            str(r.sweep_day_projected_s),
            str(r.bulk_delete_day_s),
        ]
        for r in results
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(heads))]
    lines = [
        " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
        for row in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="index size benchmark, SQLite vs PostgreSQL"
    )
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--sweep-sample", type=int, default=2000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="nvr-perf-index-") as tmp:
        results.append(bench("sqlite", f"sqlite:///{tmp}/index.db", args))
    if not args.skip_postgres:
        url, drop = postgres_database()
        try:
            results.append(bench("postgresql", url, args))
        finally:
            drop()
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in results]}))
    else:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
