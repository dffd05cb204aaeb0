"""Load benchmark: does ingest keep up while many clients download recordings?

    python perf/load.py --streams N --downloaders D [--seconds S] [--json]

``nvr serve`` (the real CLI, its own process tree) records N cameras from
``perf/rtsp_source.py`` (720p 25 fps 1.5 Mbit/s H.264, one asyncio source process). Once
every camera records and has segments, the packet counters of ``GET /api/v1/cameras`` are
sampled over S seconds without load, then over S seconds while D aiohttp clients
download ``video.mp4`` of the first recorded minute in a loop. Prints the packet rate
per stream both ways (the source offers 25/s), reconnects during the load, downloads,
MB/s served and download latency p50/p99. Exits 1 if ingest fell behind (rate under
load below 95 % of the unloaded rate, or a reconnect).
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

PERF = Path(__file__).resolve().parent
REPO = PERF.parent
sys.path.insert(0, str(PERF))

from ingest import Source  # noqa: E402


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nvr:
    """``nvr serve`` with a generated config, and an admin token made by the CLI."""

    def __init__(self, workdir: Path, urls: list[str], segment_seconds: int) -> None:
        self.port = _free_port()
        self.env = dict(os.environ, PYTHONPATH=str(REPO))
        config = workdir / "nvr.toml"
        lines = [
            f'[storage]\nroot = "{workdir / "segments"}"',
            f'[index]\nurl = "sqlite:///{workdir / "index.db"}"',
            f'[http]\nlisten = "127.0.0.1:{self.port}"',
            f"[recording]\nsegment_seconds = {segment_seconds}\ncameras_per_worker = 8",
        ]
        lines += [
            f'[[cameras]]\nid = "cam{i:04d}"\nurl = "{url}"'
            for i, url in enumerate(urls)
        ]
        config.write_text("\n\n".join(lines) + "\n")
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "nvr",
                "token",
                "create",
                "--config",
                str(config),
                "--role",
                "admin",
                "--name",
                "perf",
            ],
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
        )
        self.token = made.stdout.strip().splitlines()[-1]
        self.log = (workdir / "nvr.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nvr", "serve", "--config", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )

    def get_json(self, path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    def cameras(self) -> list[dict[str, Any]]:
        try:
            return list(self.get_json("/api/v1/cameras")["cameras"])
        except OSError:
            return []

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def _packets(nvr: Nvr) -> tuple[dict[str, int], dict[str, int]]:
    cameras = nvr.cameras()
    return (
        {c["id"]: c["packets"] for c in cameras},
        {c["id"]: c["reconnects"] for c in cameras},
    )


def _rate(nvr: Nvr, seconds: float) -> tuple[float, dict[str, int]]:
    """Mean packets per second per stream over ``seconds``; reconnects at the end."""
    first, _ = _packets(nvr)
    began = time.monotonic()
    time.sleep(seconds)
    last, reconnects = _packets(nvr)
    elapsed = time.monotonic() - began
    rates = [(last[k] - first[k]) / elapsed for k in first]
    return statistics.mean(rates), reconnects


async def _download_loop(
    nvr: Nvr,
    paths: list[str],
    clients: int,
    stop: asyncio.Event,
    latencies: list[float],
    sizes: list[int],
) -> None:
    headers = {"Authorization": f"Bearer {nvr.token}"}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

        async def one(i: int) -> None:
            while not stop.is_set():
                began = time.monotonic()
                async with session.get(
                    f"http://127.0.0.1:{nvr.port}{paths[i % len(paths)]}"
                ) as r:
                    body = await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"download answered {r.status}")
                latencies.append(time.monotonic() - began)
                sizes.append(len(body))

        await asyncio.gather(*(one(i) for i in range(clients)))


def _under_load(
    nvr: Nvr, paths: list[str], clients: int, seconds: float
) -> tuple[float, dict[str, int], list[float], list[int]]:
    latencies: list[float] = []
    sizes: list[int] = []
    result: dict[str, Any] = {}

    def load() -> None:
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        result["stop"] = (loop, stop)
        loop.run_until_complete(
            _download_loop(nvr, paths, clients, stop, latencies, sizes)
        )
        loop.close()

    import threading

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(2)
    rate, reconnects = _rate(nvr, seconds)
    loop, stop = result["stop"]
    loop.call_soon_threadsafe(stop.set)
    thread.join(180)
    return rate, reconnects, latencies, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--downloaders", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    source = Source(_free_port(), buffer_seconds=2.0)
    workdir = Path(tempfile.mkdtemp(prefix="nvr-perf-load-"))
    nvr = Nvr(
        workdir, [source.url(f"/nvr/cam{i:04d}") for i in range(args.streams)], 10
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            cameras = nvr.cameras()
            if cameras and all(c["state"] == "recording" for c in cameras):
                break
            time.sleep(1)
        time.sleep(25)  # two segments each, so downloads have something to read
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time()))
        paths = [
            f"/api/v1/cameras/cam{i:04d}/video.mp4?start={start}&end={end}"
            for i in range(args.streams)
        ]
        base_rate, base_reconnects = _rate(nvr, args.seconds)
        rate, reconnects, latencies, sizes = _under_load(
            nvr, paths, args.downloaders, args.seconds
        )
    finally:
        nvr.close()
        source.close()
    latencies.sort()
    row = {
        "streams": args.streams,
        "downloaders": args.downloaders,
        "pkt_per_s_unloaded": round(base_rate, 2),
        "pkt_per_s_under_load": round(rate, 2),
        "kept_up": round(rate / base_rate, 3) if base_rate else 0.0,
        "reconnects_during_load": sum(reconnects.values())
        - sum(base_reconnects.values()),
        "downloads": len(latencies),
        "served_mb_per_s": round(sum(sizes) / 1e6 / (args.seconds + 2), 1),
        "download_p50_s": round(latencies[len(latencies) // 2], 3)
        if latencies
        else None,
        "download_p99_s": round(latencies[int(len(latencies) * 0.99)], 3)
        if latencies
        else None,
    }
    if args.json:
        print(json.dumps(row))
    else:
        for key, value in row.items():
            print(f"{key:>24}: {value}")
    if row["kept_up"] < 0.95 or row["reconnects_during_load"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
