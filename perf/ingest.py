"""Ingest benchmark: N simulated cameras recorded by nvr, then by one ffmpeg per camera.

    python perf/ingest.py --streams N --seconds S [--json]

Both recorders read the same RTSP/TCP source (``perf/rtsp_source.py``: one asyncio
process serving every camera a 720p 25 fps 1.5 Mbit/s H.264 clip in real time). For each
recorder it prints: streams, packets recorded over packets sent (video frames counted in
the written files with PyAV, over frames the source offered), CPU % of one core per
stream (process-tree ``cpu_times`` deltas over the S second window, after every camera
records), memory per stream (RSS and PSS of the process tree at the end of the window,
divided by streams) and segment duration error (mean |media duration - target| over
closed segments, the last segment of each camera excluded). Exits 1 if nvr lost packets.

nvr starts a run at the first keyframe that carries a timestamp, and FFmpeg's RTSP
demuxer (inside PyAV) leaves the first packet of a session without one, so nvr skips the
first GOP of every connection by design; ``first GOP`` shows those frames and ``lost`` is
sent - received - first GOP. ``recv/sent`` counts everything.
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import psutil

PERF = Path(__file__).resolve().parent
PYTHON = sys.executable
CACHE = Path(tempfile.gettempdir()) / "nvr-perf-cache"
CLIP = CACHE / "clip-720p25-1500k-gop25-10s.mkv"
DRAIN_S = 2.5


@dataclass
class Row:
    recorder: str
    streams: int
    packets_sent: int
    packets_received: int
    kept_up: float
    startup_skip: int
    lost: int
    cpu_pct_per_stream: float
    rss_mb_per_stream: float
    pss_mb_per_stream: float
    segment_error_ms: float
    segments: int
    reconnects: int


# -- the source ------------------------------------------------------------------------


class Source:
    """The RTSP source process and its stdin/stdout control channel."""

    def __init__(self, port: int, buffer_seconds: float) -> None:
        sys.path.insert(0, str(PERF))
        from rtsp_source import make_clip

        make_clip(CLIP, 10, 1500)
        self.port = port
        self.proc = subprocess.Popen(
            [
                PYTHON,
                str(PERF / "rtsp_source.py"),
                "--clip",
                str(CLIP),
                "--port",
                str(port),
                "--buffer-seconds",
                str(buffer_seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the RTSP source exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def command(self, text: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stats(self, prefix: str) -> dict[str, dict[str, int]]:
        return {
            p: c
            for p, c in self.command("stats")["stats"].items()
            if p.startswith(prefix)
        }

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- measuring processes ---------------------------------------------------------------


def process_tree(pids: list[int]) -> list[psutil.Process]:
    procs = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return procs


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def memory_mb(procs: list[psutil.Process]) -> tuple[float, float]:
    """(RSS, PSS) of the processes in MiB; PSS shares each shared page among its users."""
    rss = pss = 0
    for proc in procs:
        try:
            full = proc.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += full.rss
        pss += getattr(full, "pss", full.rss)
    return rss / 2**20, pss / 2**20


@dataclass
class Load:
    cpu_pct: float  # percent of one core, whole tree
    rss_mb: float
    pss_mb: float


def measure(pids: list[int], seconds: float, label: str, source_pid: int) -> Load:
    procs = process_tree(pids)
    source = process_tree([source_pid])
    before = [cpu_seconds([p]) for p in procs]
    source_before = cpu_seconds(source)
    start = time.monotonic()
    time.sleep(seconds)
    after = [cpu_seconds([p]) for p in procs]
    elapsed = time.monotonic() - start
    source_pct = 100 * (cpu_seconds(source) - source_before) / elapsed
    _log(
        f"{label}: RTSP source used {source_pct:.1f} % of one core; "
        f"machine load average {os.getloadavg()[0]:.2f}"
    )
    rss, pss = memory_mb(procs)
    shares = sorted(
        (100 * (a - b) / elapsed for a, b in zip(after, before, strict=True)),
        reverse=True,
    )
    _log(
        f"{label}: {len(procs)} processes, CPU % of one core, largest first: "
        + " ".join(f"{share:.1f}" for share in shares[:12])
    )
    return Load(100 * (sum(after) - sum(before)) / elapsed, rss, pss)


# -- counting what was written ---------------------------------------------------------


def file_frames(path: Path) -> tuple[int, float]:
    """(video packets, media duration in seconds) of one recorded file."""
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError:
        return 0, 0.0  # unreadable: its packets count as lost
    with container:
        stream = container.streams.video[0]
        count, first, last, last_duration = 0, None, None, 0
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            count += 1
            first = packet.pts if first is None else min(first, packet.pts)
            if last is None or packet.pts >= last:
                last, last_duration = packet.pts, packet.duration or 0
        if first is None or last is None or stream.time_base is None:
            return count, 0.0
        return count, float((last - first + last_duration) * stream.time_base)


def count_camera(files: list[Path], target_s: float) -> tuple[int, list[float]]:
    """Packets in a camera's files and the duration errors of its closed segments."""
    packets, errors = 0, []
    for position, path in enumerate(sorted(files)):
        frames, duration_s = file_frames(path)
        packets += frames
        if position < len(files) - 1:
            errors.append(abs(duration_s - target_s))
    return packets, errors


def summarise(
    name: str,
    streams: int,
    sent: int,
    per_camera: list[tuple[int, list[float]]],
    load: Load,
    reconnects: int,
    startup_skip: int,
) -> Row:
    received = sum(p for p, _e in per_camera)
    startup_skip = min(startup_skip, max(0, sent - received))
    errors = [e for _p, es in per_camera for e in es]
    return Row(
        recorder=name,
        streams=streams,
        packets_sent=sent,
        packets_received=received,
        kept_up=round(received / sent, 5) if sent else 0.0,
        startup_skip=startup_skip,
        lost=sent - received - startup_skip,
        cpu_pct_per_stream=round(load.cpu_pct / streams, 3),
        rss_mb_per_stream=round(load.rss_mb / streams, 2),
        pss_mb_per_stream=round(load.pss_mb / streams, 2),
        segment_error_ms=round(1000 * sum(errors) / len(errors), 1) if errors else -1.0,
        segments=len(errors),
        reconnects=reconnects,
    )


# -- the two recorders -----------------------------------------------------------------


def run_nvr(source: Source, args: argparse.Namespace, workdir: Path) -> Row:
    root = workdir / "nvr"
    paths = [f"/nvr/cam{i:04d}" for i in range(args.streams)]
    job = {
        "root": str(root),
        "index_url": f"sqlite:///{workdir / 'index.db'}",
        "urls": [source.url(p) for p in paths],
        "segment_seconds": args.segment_seconds,
        "cameras_per_worker": args.cameras_per_worker,
        "start_timeout_s": 30 + args.streams * 0.1,
    }
    node = subprocess.Popen(
        [PYTHON, str(PERF / "nvr_node.py"), json.dumps(job)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert node.stdin is not None and node.stdout is not None
    ready = json.loads(node.stdout.readline())
    _log(
        f"nvr: {ready['ready']}/{args.streams} cameras recording, "
        f"{len(ready['worker_pids'])} workers"
    )
    time.sleep(args.warmup_seconds)
    load = measure([node.pid], args.seconds, "nvr", source.proc.pid)

    source.command("pause /nvr/")
    time.sleep(DRAIN_S)
    node.stdin.write("stop\n")
    node.stdin.flush()
    final = json.loads(node.stdout.readline())
    node.wait(60)

    stats = source.stats("/nvr/")
    sent = sum(c["frames_offered"] for c in stats.values())
    # Note: FFmpeg's RTSP demuxer gives a session's first packet no timestamp, and nvr
    # starts a run at the first keyframe that has one, so it skips one GOP per connection
    skip = sum(c["frames_first_gop"] for c in stats.values())
    per_camera = []
    for i in range(args.streams):
        camera_dir = root / f"cam{i:04d}"
        files = [p for p in camera_dir.rglob("*.mp4") if "partial" not in p.parts]
        per_camera.append(count_camera(files, args.segment_seconds))
    reconnects = sum(s["reconnects"] for s in final["states"].values())
    return summarise("nvr", args.streams, sent, per_camera, load, reconnects, skip)


def run_ffmpeg(source: Source, args: argparse.Namespace, workdir: Path) -> Row:
    streams = args.ffmpeg_streams
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []
    for i in range(streams):
        out = workdir / "ffmpeg" / f"cam{i:04d}"
        out.mkdir(parents=True)
        log = (out / "ffmpeg.log").open("wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [
                    "/usr/bin/ffmpeg",
                    "-hide_banner",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-rtsp_transport",
                    "tcp",
                    "-i",
                    source.url(f"/ffmpeg/cam{i:04d}"),
                    "-c",
                    "copy",
                    "-f",
                    "segment",
                    "-segment_time",
                    f"{args.segment_seconds:g}",
                    "-reset_timestamps",
                    "1",
                    str(out / "out%05d.mp4"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        )
    deadline = time.monotonic() + 30 + streams * 0.1
    while time.monotonic() < deadline:
        playing = len(source.stats("/ffmpeg/"))
        if playing >= streams:
            break
        time.sleep(0.5)
    _log(f"ffmpeg: {playing}/{streams} cameras recording")
    time.sleep(args.warmup_seconds)
    load = measure([p.pid for p in procs], args.seconds, "ffmpeg", source.proc.pid)

    # end of stream: ffmpeg then finishes its last file itself (SIGINT does not interrupt
    # a blocked read, and a second SIGINT aborts without writing the file's index)
    source.command("end /ffmpeg/")
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
    for log in logs:
        log.close()

    sent = sum(c["frames_offered"] for c in source.stats("/ffmpeg/").values())
    per_camera = [
        count_camera(
            list((workdir / "ffmpeg" / f"cam{i:04d}").glob("*.mp4")),
            args.segment_seconds,
        )
        for i in range(streams)
    ]
    reconnects = sum(
        max(0, c["sessions"] - 1) for c in source.stats("/ffmpeg/").values()
    )
    return summarise("ffmpeg", streams, sent, per_camera, load, reconnects, 0)


# -- output ----------------------------------------------------------------------------

COLUMNS = (
    ("recorder", "recorder"),
    ("streams", "streams"),
    ("kept_up", "recv/sent"),
    ("packets_received", "received"),
    ("packets_sent", "sent"),
    ("startup_skip", "first GOP"),
    ("lost", "lost"),
    ("cpu_pct_per_stream", "cpu%/stream"),
    ("rss_mb_per_stream", "rss MB/stream"),
    ("pss_mb_per_stream", "pss MB/stream"),
    ("segment_error_ms", "seg err ms"),
    ("segments", "segments"),
    ("reconnects", "reconnects"),
)


def table(rows: list[Row]) -> str:
    cells = [[h for _k, h in COLUMNS]]
    cells += [[str(getattr(r, k)) for k, _h in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = [
        " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
        for row in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="nvr vs ffmpeg-per-camera ingest")
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30, help="measured window")
    parser.add_argument(
        "--ffmpeg-streams",
        type=int,
        default=None,
        help="streams for the ffmpeg baseline (default: --streams; 0 skips)",
    )
    parser.add_argument("--segment-seconds", type=float, default=10)
    parser.add_argument("--cameras-per-worker", type=int, default=25)
    parser.add_argument("--warmup-seconds", type=float, default=3)
    parser.add_argument(
        "--buffer-seconds",
        type=float,
        default=2,
        help="a camera drops frames once this much video waits unsent",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.ffmpeg_streams is None:
        args.ffmpeg_streams = args.streams
    if args.port == 0:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    return args


def main() -> int:
    args = parse_args()
    source = Source(args.port, args.buffer_seconds)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="nvr-perf-ingest-") as tmp:
            rows.append(run_nvr(source, args, Path(tmp)))
            if args.ffmpeg_streams > 0:
                rows.append(run_ffmpeg(source, args, Path(tmp)))
    finally:
        source.close()
    if args.json:
        print(
            json.dumps(
                {
                    "machine": machine(),
                    "seconds": args.seconds,
                    "segment_seconds": args.segment_seconds,
                    "rows": [asdict(r) for r in rows],
                }
            )
        )
    else:
        print(
            f"machine: {machine()}  window: {args.seconds:g} s  "
            f"segment target: {args.segment_seconds:g} s"
        )
        print(table(rows))
    nvr = rows[0]
    return 0 if nvr.lost <= 0 and nvr.packets_sent > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
