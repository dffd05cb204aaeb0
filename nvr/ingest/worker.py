"""A worker process: records a shard of cameras, one thread per camera.

PyAV threads in one process contend for the GIL, so cameras are spread over worker
processes (``recording.cameras_per_worker`` each). A worker reports every event to the
supervisor over its pipe and never touches the index.
"""

import logging
import signal
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from nvr.config import CameraConfig, RecordingConfig
from nvr.ingest.events import Event
from nvr.ingest.recorder import CameraRecorder
from nvr.log import fields, setup_logging

log = logging.getLogger(__name__)

STOP = "stop"


class _Outbox:
    """Serialises sends from many camera threads onto one pipe."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.broken = threading.Event()

    def send(self, event: Event) -> None:
        if self.broken.is_set():
            return
        try:
            with self._lock:
                self._conn.send(event)
        except (BrokenPipeError, EOFError, OSError):
            # The supervisor is gone: stop recording rather than write unindexed files.
            self.broken.set()


def _watch_supervisor(conn: Connection, outbox: _Outbox, stop: threading.Event) -> None:
    """Waits for the supervisor's stop message, or for the pipe to close."""
    try:
        while not stop.is_set():
            if conn.poll(0.5) and conn.recv() == STOP:
                break
            if outbox.broken.is_set():
                break
    except (EOFError, OSError):
        log.warning("supervisor pipe closed; stopping %s", fields(pid="self"))
    stop.set()


def worker_main(
    worker_id: int,
    cameras: list[CameraConfig],
    recording: RecordingConfig,
    storage_root: str,
    conn: Connection,
    log_level: str = "INFO",
) -> None:
    """Entry point of a worker process; returns when told to stop."""
    setup_logging(log_level)
    # The supervisor decides when workers stop; Ctrl-C in a terminal reaches the whole
    # process group, so the worker ignores SIGINT and waits for the supervisor's word.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    outbox = _Outbox(conn)
    threads = []
    for camera in cameras:
        recorder = CameraRecorder(
            camera, recording, Path(storage_root), outbox.send, stop
        )
        thread = threading.Thread(
            target=recorder.run, name=f"camera-{camera.id}", daemon=True
        )
        thread.start()
        threads.append(thread)
    log.info("worker started %s", fields(worker=worker_id, cameras=len(cameras)))

    _watch_supervisor(conn, outbox, stop)
    for thread in threads:
        thread.join(timeout=15)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    if stuck:
        log.error(
            "worker stopping with cameras still busy %s",
            fields(threads=",".join(stuck)),
        )
    log.info("worker stopped %s", fields(worker=worker_id))
