"""A worker process: records a shard of cameras.

Cameras are spread over worker processes (``recording.cameras_per_worker`` each) so
that they use every core and one process's trouble stays within its shard. A worker
reports every event to the supervisor over its pipe and never touches the index. The
native client runs all its cameras on one asyncio loop (nvr.ingest.native_worker); the
FFmpeg client runs one PyAV thread per camera, here.
"""

import logging
import signal
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from nvr.config import CameraConfig, RecordingConfig, RtspClient
from nvr.ingest.events import Event
from nvr.log import fields, setup_logging

log = logging.getLogger(__name__)

STOP = "stop"


class Outbox:
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


def _watch_supervisor(conn: Connection, outbox: Outbox, stop: threading.Event) -> None:
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


def ignore_stop_signals() -> None:
    """Leaves the decision to stop to the supervisor.

    Ctrl-C in a terminal reaches the whole process group, and systemd's default
    ``KillMode=control-group`` sends SIGTERM to every process of the service at once. A
    worker that died of either would leave its open segments unclosed; instead it waits
    for the supervisor's stop message (or its pipe closing), closes them and exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def worker_main(
    worker_id: int,
    cameras: list[CameraConfig],
    recording: RecordingConfig,
    storage_root: str,
    conn: Connection,
    log_level: str = "INFO",
    client: RtspClient = "ffmpeg",
) -> None:
    """Entry point of a worker process; returns when told to stop."""
    if client == "native":
        # imported here: the native worker never loads PyAV, the FFmpeg one needs it
        from nvr.ingest.native_worker import native_worker_main

        native_worker_main(worker_id, cameras, recording, storage_root, conn, log_level)
        return
    _ffmpeg_worker_main(worker_id, cameras, recording, storage_root, conn, log_level)


def _ffmpeg_worker_main(
    worker_id: int,
    cameras: list[CameraConfig],
    recording: RecordingConfig,
    storage_root: str,
    conn: Connection,
    log_level: str,
) -> None:
    from nvr.ingest.recorder import CameraRecorder

    setup_logging(log_level)
    ignore_stop_signals()
    stop = threading.Event()
    outbox = Outbox(conn)
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
