"""Each perf/ benchmark in its small, fast form: it runs, exits 0, prints its table/JSON.

These prove the benchmarks work; they time nothing (the full runs are in perf/README.md).
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "perf" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
        check=False,
    )


def _json_rows(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr[-3000:]
    rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])[
        "rows"
    ]
    return rows


@pytest.mark.timeout(80)
def test_ingest_benchmark_two_streams_nvr_and_ffmpeg_rows_without_loss() -> None:
    done = _run(
        "ingest.py",
        "--streams",
        "2",
        "--seconds",
        "6",
        "--segment-seconds",
        "2",
        "--warmup-seconds",
        "1",
        "--json",
        timeout_s=75,
    )
    rows = _json_rows(done)
    assert [row["recorder"] for row in rows] == ["nvr", "ffmpeg"]
    for row in rows:
        for key in ("streams", "kept_up", "cpu_pct_per_stream", "rss_mb_per_stream"):
            assert key in row
        assert row["streams"] == 2
        assert 0.5 < row["kept_up"] <= 1.0  # nvr skips each connection's first GOP
        assert row["cpu_pct_per_stream"] > 0 and row["rss_mb_per_stream"] > 0
    assert rows[0]["lost"] == 0


@pytest.mark.timeout(60)
def test_index_benchmark_ten_thousand_rows_reports_both_backends() -> None:
    done = _run(
        "index.py",
        "--rows",
        "10000",
        "--queries",
        "50",
        "--sweep-sample",
        "50",
        "--json",
        timeout_s=55,
    )
    rows = _json_rows(done)
    assert [row["backend"] for row in rows] == ["sqlite", "postgresql"]
    for row in rows:
        assert row["rows"] == 10000
        assert 0 < row["query_p50_ms"] <= row["query_p99_ms"]
        assert row["sweep_rows_per_s"] > 0 and row["bulk_delete_day_s"] > 0


@pytest.mark.timeout(60)
def test_playback_benchmark_short_ranges_serves_every_byte() -> None:
    done = _run("playback.py", "--ranges", "1m,10m", "--json", timeout_s=55)
    rows = _json_rows(done)
    assert [(r["range"], r["reader"]) for r in rows] == [
        ("1m", "raw read"),
        ("1m", "video.mp4"),
        ("10m", "raw read"),
        ("10m", "video.mp4"),
    ]
    for raw, served in zip(rows[::2], rows[1::2], strict=True):
        # the clip rewrites headers, so its size is close to, not equal to, the files'
        assert abs(served["bytes"] - raw["bytes"]) < 0.01 * raw["bytes"]
        assert served["ttfb_ms"] > 0 and served["mb_per_s"] > 0
