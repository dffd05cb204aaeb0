"""The supervisor: spreads cameras over worker processes, indexes what they record.

It runs on the asyncio loop of ``nvr serve``. Workers send events over pipes; the
supervisor reads them with ``loop.add_reader`` and hands index writes to the single
index thread, so the order "segment file durable, then row committed" holds: a worker
sends SegmentClosed only after the file is fsynced and renamed into place.
"""

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from nvr.config import CameraConfig, Config, RtspClient
from nvr.errors import NvrError
from nvr.ingest.events import CameraState, CameraStatus, Event, RunEnded, SegmentClosed
from nvr.ingest.reconcile import recover_camera
from nvr.ingest.worker import STOP, worker_main
from nvr.log import fields
from nvr.timeutil import format_rfc3339, wall_now_us

log = logging.getLogger(__name__)

T = TypeVar("T")
IndexCall = Callable[..., Awaitable[Any]]

# A dead worker is restarted after this delay, doubled per quick death, capped.
RESTART_DELAY_S = (0.5, 10.0)
# A failed index write that may succeed later (database locked or unreachable) is retried
# after this delay, doubled per failure, capped; while stopping, only this many times.
INDEX_RETRY_S = (0.2, 5.0)
INDEX_RETRIES_WHILE_STOPPING = 3


@dataclass
class Worker:
    """One worker process and the cameras it records."""

    worker_id: int
    cameras: list[CameraConfig]
    client: RtspClient = "native"
    process: BaseProcess | None = None
    conn: multiprocessing.connection.Connection | None = None
    restarts: int = 0
    started_monotonic_s: float = 0.0
    events: int = 0
    camera_ids: list[str] = field(default_factory=list)


FUTURE_TOLERANCE_US = 1_000_000
"""How far past the moment it is indexed a closed segment may end: the last frame's
own duration and clock granularity, nothing more."""


def index_segment(
    index: Any, event: SegmentClosed, now_us: int | None = None
) -> tuple[int, int]:
    """Indexes a segment, moved later if it would start before the camera's last one ended.

    A server clock stepped backwards, or a recovered partial whose provisional start was
    early, would otherwise overlap its predecessor and be refused. A closed segment
    cannot end after the moment it is indexed: an end further ahead (a camera whose
    clock runs fast, shifted onto its predecessor run after run) is cut back to now, so
    the timeline never drifts into the future. Returns the segment id and the shift
    applied in microseconds. Blocking (runs on the index thread).
    """
    last = index.last_segment(event.camera_id)
    shift_us = 0
    if last is not None and last.path != event.path and event.start_us < last.end_us:
        shift_us = last.end_us - event.start_us
        event = replace(
            event, start_us=event.start_us + shift_us, end_us=event.end_us + shift_us
        )
    latest_end_us = (wall_now_us() if now_us is None else now_us) + FUTURE_TOLERANCE_US
    if event.end_us > latest_end_us:
        log.warning(
            "segment ends in the future; end moved back to now %s",
            fields(
                camera=event.camera_id,
                path=event.path,
                ahead_us=event.end_us - latest_end_us,
            ),
        )
        event = replace(event, end_us=max(event.start_us + 1, latest_end_us))
    return int(index.add_segment(event)), shift_us


def transient_index_error(exc: NvrError) -> bool:
    """Whether an index failure may pass by itself (locked, unreachable, connection lost).

    Refusals (overlap, unknown camera, same path with other content) are permanent.
    """
    return isinstance(exc.__cause__, (OperationalError, InterfaceError))


def shard(cameras: Sequence[CameraConfig], per_worker: int) -> list[list[CameraConfig]]:
    """Splits cameras into shards of at most ``per_worker``, evenly sized."""
    if not cameras:
        return []
    count = -(-len(cameras) // per_worker)
    return [list(cameras[i::count]) for i in range(count)]


def plan_workers(config: Config, cameras: Sequence[CameraConfig]) -> list[Worker]:
    """The workers for ``cameras``: each records cameras of one RTSP client only."""
    default = config.recording.rtsp_client
    workers: list[Worker] = []
    for client in ("native", "ffmpeg"):
        chosen = [c for c in cameras if c.client(default) == client]
        for shard_cameras in shard(chosen, config.recording.cameras_per_worker):
            workers.append(
                Worker(
                    len(workers),
                    shard_cameras,
                    client,
                    camera_ids=[c.id for c in shard_cameras],
                )
            )
    return workers


class Supervisor:
    """Owns the worker processes and the live state of every camera."""

    def __init__(
        self,
        config: Config,
        cameras: Sequence[CameraConfig],
        index_call: IndexCall,
        index: Any,
        log_level: str = "INFO",
    ) -> None:
        self._config = config
        self._index_call = index_call
        self._index = index
        self._log_level = log_level
        self._context = multiprocessing.get_context("spawn")
        self._workers = plan_workers(config, cameras)
        self.states: dict[str, CameraState] = {
            camera.id: CameraState(camera.id, CameraStatus.CONNECTING)
            for camera in cameras
        }
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False
        self._paused = False  # retention (issue 4): disk full of held recordings
        # the latest wall time read: "now" for index_segment that a server clock stepped
        # back does not move back (segments closed before the step keep their ends)
        self._wall_high_us = 0
        self.pause_reason: str | None = None
        self._pending: set[asyncio.Task[None]] = set()
        # one lock per camera keeps its index writes in arrival order across retries
        self._index_locks: dict[str, asyncio.Lock] = {}
        self.index_error: str | None = None
        """The last transient index failure while writes are being retried, else None."""
        # health (issue 7): called with each segment committed to the index (metrics)
        self.on_segment_indexed: Callable[[SegmentClosed], None] | None = None

    @property
    def workers(self) -> list[Worker]:
        return self._workers

    async def start(self) -> None:
        """Recovers what an earlier run left behind, then starts every worker."""
        for worker in self._workers:
            await self._recover(worker.cameras)
            self._spawn(worker)
        self._monitor = asyncio.create_task(
            self._watch_workers(), name="worker-monitor"
        )

    async def stop(self, timeout_s: float = 20.0) -> None:
        """Asks workers to close their segments, waits, and indexes their last events."""
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
        for worker in self._workers:
            if worker.conn is not None:
                try:
                    worker.conn.send(STOP)
                except OSError:
                    pass
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            await self._join(worker, deadline)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _join(self, worker: Worker, deadline: float) -> None:
        process = worker.process
        if process is None:
            return
        await asyncio.to_thread(process.join, max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.error(
                "worker did not stop; killing it %s", fields(worker=worker.worker_id)
            )
            process.kill()
        self._detach(worker)

    # -- disk pressure (retention, issue 4; nvr.retention.pressure) ---------------------

    async def pause_recording(self, reason: str, timeout_s: float = 20.0) -> None:
        """Stops every worker (open segments are closed and indexed) and keeps them
        stopped, each camera FAILED with ``reason``, until ``resume_recording``."""
        if self._paused or self._stopping:
            return
        self._paused = True
        self.pause_reason = reason
        for worker in self._workers:
            if worker.conn is not None:
                try:
                    worker.conn.send(STOP)
                except OSError:
                    pass
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            await self._join(worker, deadline)
        for camera_id in self.states:
            self.states[camera_id] = CameraState(
                camera_id, CameraStatus.FAILED, last_error=reason
            )
        log.critical("recording paused %s", fields(reason=reason))

    async def resume_recording(self) -> None:
        """Starts the workers stopped by ``pause_recording`` again."""
        if not self._paused or self._stopping:
            return
        self._paused = False
        self.pause_reason = None
        for worker in self._workers:
            await self._recover(worker.cameras)
            self._spawn(worker)
        log.warning("recording resumed %s", fields(workers=len(self._workers)))

    @property
    def paused(self) -> bool:
        return self._paused

    # -- workers ------------------------------------------------------------------------

    def _spawn(self, worker: Worker) -> None:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(
                worker.worker_id,
                worker.cameras,
                self._config.recording,
                str(self._config.storage.root),
                child_conn,
                self._log_level,
                worker.client,
            ),
            name=f"nvr-worker-{worker.worker_id}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        worker.process = process
        worker.conn = parent_conn
        worker.started_monotonic_s = time.monotonic()
        asyncio.get_running_loop().add_reader(parent_conn.fileno(), self._drain, worker)
        log.info(
            "worker spawned %s",
            fields(
                worker=worker.worker_id,
                pid=process.pid,
                cameras=",".join(worker.camera_ids),
            ),
        )

    def _detach(self, worker: Worker) -> None:
        if worker.conn is None:
            return
        self._drain(worker)
        try:
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        except (OSError, ValueError):
            pass
        worker.conn.close()
        worker.conn = None

    def _drain(self, worker: Worker) -> None:
        """Reads every event waiting on a worker's pipe (called by the loop's reader)."""
        conn = worker.conn
        if conn is None:
            return
        try:
            while conn.poll():
                event = conn.recv()
                worker.events += 1
                self._dispatch(event)
        except (EOFError, OSError):
            # The worker is gone; its monitor restarts it. Stop watching the dead pipe.
            try:
                asyncio.get_running_loop().remove_reader(conn.fileno())
            except (OSError, ValueError):
                pass

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, CameraState):
            self._update_state(event)
            return
        task = asyncio.get_running_loop().create_task(self._index_event(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _update_state(self, state: CameraState) -> None:
        previous = self.states.get(state.camera_id)
        self.states[state.camera_id] = state
        if previous is None or previous.status != state.status:
            level = (
                logging.INFO if state.status != CameraStatus.FAILED else logging.WARNING
            )
            log.log(
                level,
                "camera %s %s",
                state.status.value,
                fields(camera=state.camera_id, error=state.last_error or "-"),
            )

    async def _index_event(self, event: SegmentClosed | RunEnded) -> None:
        """Indexes one event after the camera's earlier ones, retrying transient failures."""
        lock = self._index_locks.setdefault(event.camera_id, asyncio.Lock())
        async with lock:
            await self._index_with_retry(event)

    async def _index_with_retry(self, event: SegmentClosed | RunEnded) -> None:
        delay_s = INDEX_RETRY_S[0]
        failures = 0
        while True:
            try:
                await self._write_event(event)
            except NvrError as exc:
                failures += 1
                gives_up = self._stopping and failures > INDEX_RETRIES_WHILE_STOPPING
                if not transient_index_error(exc) or gives_up:
                    # The file stays on disk; startup reconciliation offers it again.
                    log.error(
                        "index write failed %s",
                        fields(camera=event.camera_id, error=exc),
                    )
                    return
                self.index_error = str(exc)
                log.warning(
                    "index write failed; retrying %s",
                    fields(
                        camera=event.camera_id,
                        attempt=failures,
                        delay_s=delay_s,
                        error=exc,
                    ),
                )
                await asyncio.sleep(delay_s)
                delay_s = min(INDEX_RETRY_S[1], delay_s * 2)
                continue
            if failures:
                self.index_error = None
                log.info(
                    "index write succeeded after retries %s",
                    fields(camera=event.camera_id, attempts=failures + 1),
                )
            return

    async def _write_event(self, event: SegmentClosed | RunEnded) -> None:
        """One attempt at indexing ``event``; raises NvrError (StorageError) on failure."""
        if isinstance(event, RunEnded):
            await self._index_call(
                self._index.end_run,
                event.camera_id,
                event.run_id,
                event.end_us,
                event.reason,
            )
            return
        self._wall_high_us = max(self._wall_high_us, wall_now_us())
        segment_id, shift_us = await self._index_call(
            index_segment, self._index, event, self._wall_high_us
        )
        if self.on_segment_indexed is not None:
            self.on_segment_indexed(event)
        if shift_us:
            log.warning(
                "segment started before its predecessor ended; moved later %s",
                fields(camera=event.camera_id, segment=segment_id, shift_us=shift_us),
            )
        log.info(
            "segment indexed %s",
            fields(
                camera=event.camera_id,
                segment=segment_id,
                start=format_rfc3339(event.start_us),
                end=format_rfc3339(event.end_us),
                bytes=event.bytes,
            ),
        )

    async def _watch_workers(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.5)
            for worker in self._workers:
                process = worker.process
                if (
                    process is None
                    or process.is_alive()
                    or self._stopping
                    or self._paused
                ):
                    continue
                await self._restart(worker, process.exitcode)

    async def _restart(self, worker: Worker, exitcode: int | None) -> None:
        self._detach(worker)
        worker.process = None
        log.error(
            "worker died; restarting %s",
            fields(
                worker=worker.worker_id,
                exitcode=exitcode,
                cameras=",".join(worker.camera_ids),
            ),
        )
        for camera_id in worker.camera_ids:
            self.states[camera_id] = CameraState(
                camera_id,
                CameraStatus.RECONNECTING,
                last_error=f"worker exited ({exitcode})",
            )
        lived_s = time.monotonic() - worker.started_monotonic_s
        delay_s = (
            RESTART_DELAY_S[0]
            if lived_s > 60
            else min(
                RESTART_DELAY_S[1], RESTART_DELAY_S[0] * 2 ** min(worker.restarts, 5)
            )
        )
        worker.restarts += 1
        await asyncio.sleep(delay_s)
        if self._stopping:
            return
        await self._recover(worker.cameras)
        self._spawn(worker)

    async def _recover(self, cameras: Sequence[CameraConfig]) -> None:
        """Indexes what a dead recorder left: partial files and closed, unindexed ones."""
        root = Path(self._config.storage.root)
        for camera in cameras:
            events = await asyncio.to_thread(
                recover_camera, root, camera.id, self._index
            )
            for event in events:
                await self._index_event(event)
