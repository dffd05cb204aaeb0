"""A native worker process: one asyncio loop (uvloop) records a shard of cameras.

Each camera is a task; packets are handled in the connections' ``data_received``, and
every blocking file operation goes to the worker's single I/O thread. The supervisor's
stop message (or its pipe closing) ends every task: open segments are closed and their
events sent before the process exits. PyAV is never imported here.
"""

import asyncio
import logging
from multiprocessing.connection import Connection
from pathlib import Path

import uvloop

from nvr.config import CameraConfig, RecordingConfig
from nvr.ingest.native_io import IoThread
from nvr.ingest.native_recorder import NativeCameraRecorder
from nvr.ingest.worker import STOP, Outbox, ignore_stop_signals
from nvr.log import fields, setup_logging

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 15.0


def native_worker_main(
    worker_id: int,
    cameras: list[CameraConfig],
    recording: RecordingConfig,
    storage_root: str,
    conn: Connection,
    log_level: str,
) -> None:
    """Entry point of a native worker process; returns when told to stop."""
    setup_logging(log_level)
    ignore_stop_signals()
    uvloop.run(_record(worker_id, cameras, recording, Path(storage_root), conn))


async def _record(
    worker_id: int,
    cameras: list[CameraConfig],
    recording: RecordingConfig,
    root: Path,
    conn: Connection,
) -> None:
    stop = asyncio.Event()
    outbox = Outbox(conn)
    io = IoThread()
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), _read_supervisor, conn, stop)
    tasks = [
        asyncio.create_task(
            NativeCameraRecorder(camera, recording, root, outbox.send, io, stop).run(),
            name=f"camera-{camera.id}",
        )
        for camera in cameras
    ]
    log.info("worker started %s", fields(worker=worker_id, cameras=len(cameras)))
    while not stop.is_set():
        try:
            async with asyncio.timeout(0.5):
                await stop.wait()
        except TimeoutError:
            if outbox.broken.is_set():
                log.warning(
                    "supervisor pipe closed; stopping %s", fields(worker=worker_id)
                )
                stop.set()
    loop.remove_reader(conn.fileno())
    done, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for task in pending:
        task.cancel()
    if pending:
        log.error(
            "worker stopping with cameras still busy %s",
            fields(worker=worker_id, cameras=",".join(t.get_name() for t in pending)),
        )
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "camera task failed %s",
                fields(camera=task.get_name(), error=repr(task.exception())),
            )
    # every queued write, close and event leaves before the process does
    await asyncio.to_thread(io.shutdown)
    log.info("worker stopped %s", fields(worker=worker_id))


def _read_supervisor(conn: Connection, stop: asyncio.Event) -> None:
    """The supervisor's pipe is readable: a stop message, or it closed."""
    try:
        while conn.poll():
            if conn.recv() == STOP:
                stop.set()
    except (EOFError, OSError):
        stop.set()
