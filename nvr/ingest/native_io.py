"""The native worker's file I/O: one thread per worker process does every blocking
write, fsync and rename, in the order the event loop asked for them.

The event loop must never wait on the disk (an fsync can take a second on a busy disk,
and one loop serves dozens of cameras), so a camera's segment operations are queued
here. A single thread keeps each camera's operations in order, and the events they
produce (SegmentClosed, then RunEnded) leave in that same order. A StorageError stops
the camera's later operations and is reported to the loop.
"""

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nvr.errors import StorageError
from nvr.ingest.events import Event
from nvr.segmenter.finalize import SegmentIdentity, TrackFacts, log_closed
from nvr.segmenter.fragment_file import FragmentFile

log = logging.getLogger(__name__)


class IoThread:
    """The worker's I/O thread."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="segment-io"
        )

    def submit(self, job: Callable[[], None]) -> "asyncio.Future[None]":
        return asyncio.wrap_future(self._executor.submit(job))

    def shutdown(self) -> None:
        """Waits for every queued operation, then ends the thread."""
        self._executor.shutdown(wait=True)


class SegmentSink:
    """One camera's open segment file, as seen from the event loop.

    Every method returns at once; the work runs on the I/O thread. After a failure the
    sink refuses further work and ``on_error`` is called on the loop with the error.
    """

    def __init__(
        self,
        io: IoThread,
        emit: Callable[[Event], None],
        on_error: Callable[[StorageError], None],
    ) -> None:
        self._io = io
        self._emit = emit
        self._on_error = on_error
        self._loop = asyncio.get_running_loop()
        self._file: FragmentFile | None = None
        self.failed: StorageError | None = None  # read on the loop only

    def open(self, path: Path, init: bytes) -> None:
        self._queue(self._open, path, init, opens=True)

    def append(self, chunks: list[bytes]) -> None:
        self._queue(self._append, chunks)

    def close(
        self,
        root: Path,
        identity: SegmentIdentity,
        facts: TrackFacts,
        times: tuple[int, int],
        media: tuple[int, int, int],
        keyframes: tuple[tuple[int, int], ...],
    ) -> None:
        self._queue(self._close, root, identity, facts, times, media, keyframes)

    def emit(self, event: Event) -> None:
        """Sends ``event`` once the operations queued before it are done."""
        self._io.submit(lambda: self._emit(event))

    async def drain(self) -> None:
        """Waits until every operation queued so far has run."""
        await self._io.submit(lambda: None)

    def _queue(
        self, operation: Callable[..., None], *args: Any, opens: bool = False
    ) -> None:
        if self.failed is not None:
            return
        self._io.submit(lambda: self._guarded(operation, args, opens))

    def _guarded(
        self, operation: Callable[..., None], args: tuple[Any, ...], opens: bool
    ) -> None:
        """Runs on the I/O thread: one operation, unless an earlier one failed."""
        if self._file is None and not opens:
            return  # the open failed; its error was reported
        try:
            operation(*args)
        except StorageError as exc:
            if self._file is not None:
                self._file.abandon()
                self._file = None
            self._loop.call_soon_threadsafe(self._failed, exc)

    def _failed(self, error: StorageError) -> None:
        if self.failed is None:
            self.failed = error
            self._on_error(error)

    def _open(self, path: Path, init: bytes) -> None:
        if self._file is not None:
            self._file.abandon()  # unreachable in order; kept safe for recovery
        self._file = FragmentFile(path, init)

    def _append(self, chunks: list[bytes]) -> None:
        assert self._file is not None
        self._file.append(chunks)

    def _close(
        self,
        root: Path,
        identity: SegmentIdentity,
        facts: TrackFacts,
        times: tuple[int, int],
        media: tuple[int, int, int],
        keyframes: tuple[tuple[int, int], ...],
    ) -> None:
        assert self._file is not None
        file, self._file = self._file, None
        closed = file.close(root, identity, facts, times, media, keyframes)
        log_closed(closed)
        self._emit(closed)
