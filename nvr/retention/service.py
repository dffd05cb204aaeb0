"""Retention as ``nvr serve`` runs it: the periodic sweep and the disk pressure check.

Both run on the index thread (``index_call``), one bounded pass at a time. The first
sweep starts at once, so deletions a crash left half done are completed at startup
(before new ones begin). A pass cut short by its bound (a backlog: after an outage or a
shorter retention) is followed by the next one after ``SWEEP_BACKLOG_PAUSE_S``, which
lets the index thread serve other work in between, until the backlog is gone. When
disk pressure finds only held recordings left, recording is paused through the
supervisor and resumed once usage is below the high mark again.
"""

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from nvr.config import Config
from nvr.errors import NvrError
from nvr.index.repo import Index
from nvr.log import fields
from nvr.retention.groups import seed_group_settings
from nvr.retention.pressure import PRESSURE_PERIOD_S, DiskPressure, verified_eviction
from nvr.retention.sweeper import SweepResult, sweep
from nvr.timeutil import wall_now_us

log = logging.getLogger(__name__)

# Retention is judged in days; a sweep every ten minutes keeps deletions prompt and cheap.
SWEEP_PERIOD_S = 600.0
# Between passes while a backlog lasts: segment indexing and API calls queued on the
# index thread run first.
SWEEP_BACKLOG_PAUSE_S = 0.5


class Recording(Protocol):
    """What disk pressure needs of the supervisor."""

    async def pause_recording(self, reason: str) -> None: ...

    async def resume_recording(self) -> None: ...


class RetentionService:
    """Owns the sweeper and disk pressure tasks; see the module docstring."""

    def __init__(
        self,
        config: Config,
        index: Index,
        index_call: Callable[..., Awaitable[Any]],
        store: Any | None,
        recording: Recording | None,
        *,
        sweep_period_s: float = SWEEP_PERIOD_S,
        pressure_period_s: float = PRESSURE_PERIOD_S,
        backlog_pause_s: float = SWEEP_BACKLOG_PAUSE_S,
    ) -> None:
        self.config = config
        self.index = index
        self.index_call = index_call
        self.root = Path(config.storage.root)
        self.store = store
        self.recording = recording
        self.sweep_period_s = sweep_period_s
        self.backlog_pause_s = backlog_pause_s
        self.pressure_period_s = pressure_period_s
        evict = (
            None
            if store is None
            else verified_eviction(store, index, self.root, wall_now_us)
        )
        self.pressure = DiskPressure(
            index, self.root, config.storage, store, wall_now_us, evict=evict
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.index_call(seed_group_settings, self.index, self.config.groups)
        self._tasks = [
            asyncio.create_task(self._sweep_forever(), name="retention-sweep"),
            asyncio.create_task(self._pressure_forever(), name="disk-pressure"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _sweep_forever(self) -> None:
        run = functools.partial(sweep, self.index, self.root, store=self.store)
        while True:
            pause_s = self.sweep_period_s
            try:
                result: SweepResult = await self.index_call(run)
                if result.more:
                    pause_s = self.backlog_pause_s
            except (NvrError, OSError) as exc:
                log.error("retention sweep failed %s", fields(error=exc))
            await asyncio.sleep(pause_s)

    async def _pressure_forever(self) -> None:
        while True:
            try:
                status = await self.index_call(self.pressure.check)
                await self._apply(status.exhausted, status.message)
            except (NvrError, OSError) as exc:
                log.error("disk pressure check failed %s", fields(error=exc))
            await asyncio.sleep(self.pressure_period_s)

    async def _apply(self, exhausted: bool, message: str | None) -> None:
        if self.recording is None:
            return
        if exhausted:
            await self.recording.pause_recording(message or "storage disk full")
        else:
            await self.recording.resume_recording()
