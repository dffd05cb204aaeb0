"""The floor under nvr's ingest CPU: PyAV demuxing RTSP, nothing else.

    python perf/demux_floor.py --streams 25 --seconds 10

One process, one thread per stream, each only reading packets from the benchmark source
(``perf/rtsp_source.py``) the way nvr's recorder opens it (RTSP over TCP, FFmpeg's
``timeout`` in microseconds, PyAV's read timeout of 1 s), and dropping them: no
segmenting, no muxing, no files. Prints CPU % of one core per stream and RSS per stream.
Whatever nvr does on top of libavformat's RTSP demuxer costs more than this.
"""

import argparse
import socket
import sys
import threading
import time
from pathlib import Path

import av
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import Source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--no-read-timeout",
        action="store_true",
        help="open without PyAV's timeout (no GIL-taking interrupt callback)",
    )
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = Source(port, 2.0)
    stop = threading.Event()
    packets = [0] * args.streams

    def read(i: int) -> None:
        timeout = None if args.no_read_timeout else (10.0, 1.0)
        with av.open(
            source.url(f"/floor/cam{i:04d}"),
            timeout=timeout,
            options={"rtsp_transport": "tcp", "timeout": "10000000"},
        ) as container:
            for _packet in container.demux(container.streams.video[0]):
                packets[i] += 1
                if stop.is_set():
                    return

    me = psutil.Process()
    base_rss = me.memory_info().rss
    threads = [
        threading.Thread(target=read, args=(i,), daemon=True)
        for i in range(args.streams)
    ]
    for thread in threads:
        thread.start()
    time.sleep(3)
    before, started, count = me.cpu_times(), time.monotonic(), sum(packets)
    time.sleep(args.seconds)
    after, elapsed = me.cpu_times(), time.monotonic() - started
    used = (after.user - before.user) + (after.system - before.system)
    rate = (sum(packets) - count) / elapsed
    rss_mb = (me.memory_info().rss - base_rss) / 2**20
    stop.set()
    source.close()
    print(
        f"streams={args.streams} packets/s={rate:.0f} "
        f"cpu%/stream={100 * used / elapsed / args.streams:.3f} "
        f"rss MB/stream (above the idle process)={rss_mb / args.streams:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
