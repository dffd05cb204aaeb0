"""Load while recording: fifty concurrent playback downloads must not make ingest fall
behind (no stall, no reconnect, packet counters keep pace with the cameras)."""

import threading
import time
from typing import Any

import pytest

from nvr.timeutil import format_rfc3339, wall_now_us
from tests.e2e.checks import camera, indexed_rows, state

pytestmark = pytest.mark.e2e

DOWNLOADERS = 50
LOAD_S = 20.0
SEGMENT_S = 4


def _packets(recorder: Any, names: list[str]) -> dict[str, int]:
    return {n: int(camera(recorder, n)["packets"]) for n in names}


def _rate(recorder: Any, names: list[str], seconds: float) -> dict[str, float]:
    """Packets per second each camera recorded over ``seconds`` (counters move every 5 s)."""
    first, began = _packets(recorder, names), time.monotonic()
    time.sleep(seconds)
    last, elapsed = _packets(recorder, names), time.monotonic() - began
    return {n: (last[n] - first[n]) / elapsed for n in names}


@pytest.mark.timeout(300)
def test_serve_fifty_downloads_while_recording_do_not_slow_ingest(
    rtsp_camera_factory: Any, recorder_factory: Any
) -> None:
    names = ["l0", "l1", "l2"]
    cams = [rtsp_camera_factory(codec="h264") for _ in names]
    recorder = recorder_factory(
        list(zip(names, [c.url for c in cams], strict=True)), segment_seconds=SEGMENT_S
    )
    recorder.start()
    recorder.wait_for(
        lambda: all(state(recorder, n) == "recording" for n in names),
        60,
        "every camera recording",
    )
    recorder.wait_for(
        lambda: all(len(indexed_rows(recorder, n)) >= 3 for n in names),
        40,
        "three segments each",
    )
    baseline = _rate(recorder, names, 15)
    reconnects = {n: camera(recorder, n)["reconnects"] for n in names}

    stop = threading.Event()
    done: list[tuple[int, int, float]] = []  # (status, bytes, seconds)
    lock = threading.Lock()

    # each camera's own first three segments
    queries = {}
    for n in names:
        r = indexed_rows(recorder, n)
        queries[n] = (
            f"start={format_rfc3339(r[0].start_us)}&end={format_rfc3339(r[2].end_us)}"
        )

    def download_camera(i: int) -> None:
        name = names[i % 3]
        while not stop.is_set():
            began = time.monotonic()
            status, _, body = recorder.get(
                f"/api/v1/cameras/{name}/video.mp4?{queries[name]}"
            )
            with lock:
                done.append((status, len(body), time.monotonic() - began))

    threads = [
        threading.Thread(target=download_camera, args=(i,)) for i in range(DOWNLOADERS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2)
    under_load = _rate(recorder, names, LOAD_S)
    index_lag_us = {
        n: wall_now_us() - indexed_rows(recorder, n)[-1].end_us for n in names
    }
    stop.set()
    for thread in threads:
        thread.join(timeout=120)

    statuses = {s for s, _, _ in done}
    total_mb = sum(b for _, b, _ in done) / 1e6
    slowest = max(t for _, _, t in done)
    print(
        f"baseline pkt/s {baseline}, under load {under_load}, downloads {len(done)} "
        f"({total_mb:.0f} MB, slowest {slowest:.1f} s), index lag s "
        f"{ {n: v / 1e6 for n, v in index_lag_us.items()} }"
    )
    assert statuses == {200}, statuses
    assert len(done) >= DOWNLOADERS
    for n in names:
        assert state(recorder, n) == "recording"
        assert camera(recorder, n)["reconnects"] == reconnects[n], n
        assert under_load[n] >= 0.85 * baseline[n], (n, baseline, under_load)
        assert index_lag_us[n] <= (2 * SEGMENT_S + 5) * 1_000_000, (n, index_lag_us)
