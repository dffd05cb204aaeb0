"""Local eviction: removing the local copy of segments already verified in S3.

Only ``replicated`` rows are candidates, and only once their segment ended more than
the group's ``local_days`` ago. Procedure per segment (docs/storage.md):

1. ``head`` the object: it must still have the size and checksum recorded when it was
   verified; otherwise the row goes back to ``local`` and the segment is uploaded again.
2. Unlink the local file and fsync its directory (a file already gone is fine).
3. Mark the row ``evicted``.

A crash after 2 leaves a ``replicated`` row without its file: playback reads it from S3
(the tiered reader falls back on a missing file) and the next pass finishes step 3.
"""

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from nvr.config import GroupConfig
from nvr.errors import ObjectStoreError, StorageError
from nvr.index.repo import Index
from nvr.log import fields
from nvr.storage import replicas
from nvr.storage.keys import US_PER_DAY
from nvr.storage.s3 import S3Store
from nvr.timeutil import wall_now_us

log = logging.getLogger(__name__)

T = TypeVar("T")
EVICT_INTERVAL_S = 60.0
EVICT_BATCH = 100


class Evictor:
    """Removes local copies of replicated segments past their group's ``local_days``."""

    def __init__(
        self,
        store: S3Store,
        index: Index,
        index_call: Callable[..., Awaitable[Any]],
        storage_root: Path,
        groups: Sequence[GroupConfig],
        *,
        clock: Callable[[], int] = wall_now_us,
        interval_s: float = EVICT_INTERVAL_S,
    ) -> None:
        self.store = store
        self.index = index
        self.index_call = index_call
        self.root = storage_root
        self.groups = [group for group in groups if group.local_days is not None]
        self.clock = clock
        self.interval_s = interval_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Runs a pass now (a segment was just replicated)."""
        self._wake.set()

    async def run(self) -> None:
        """Evicts until cancelled: a pass per interval, or sooner when woken."""
        while True:
            try:
                await self.evict_once()
            except StorageError as exc:
                log.error("eviction pass failed %s", fields(error=exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()

    async def evict_once(self) -> int:
        """One pass over every group; returns how many local copies were removed."""
        removed = 0
        for group in self.groups:
            assert group.local_days is not None
            cutoff_us = self.clock() - int(group.local_days * US_PER_DAY)
            while True:
                candidates = await self.index_call(
                    replicas.eviction_candidates,
                    self.index,
                    group.name,
                    cutoff_us,
                    EVICT_BATCH,
                )
                for candidate in candidates:
                    try:
                        removed += await self._evict(candidate)
                    except ObjectStoreError as exc:
                        # S3 is down or refusing: the uploader reports it; try next pass.
                        log.debug("eviction paused %s", fields(error=exc))
                        return removed
                if len(candidates) < EVICT_BATCH:
                    break
        return removed

    async def _evict(self, candidate: replicas.Replicated) -> int:
        info = await asyncio.to_thread(self.store.head, candidate.object_key)
        context = fields(
            camera=candidate.camera_id,
            segment=candidate.segment_id,
            key=candidate.object_key,
        )
        if (
            info is None
            or info.size != candidate.bytes
            or (
                candidate.checksum is not None
                and info.checksum_sha256 != candidate.checksum
            )
        ):
            log.error("replicated object missing or changed, queued again %s", context)
            await self.index_call(
                replicas.mark_failed,
                self.index,
                candidate.segment_id,
                "object missing or changed in S3 before eviction",
                self.clock(),
            )
            return 0
        await asyncio.to_thread(
            functools.partial(_remove_local, self.root / candidate.path)
        )
        await self.index_call(
            replicas.mark_evicted, self.index, candidate.segment_id, self.clock()
        )
        log.info("local copy evicted %s", context)
        return 1


def _remove_local(path: Path) -> None:
    """Unlinks the file and fsyncs its directory; a missing file is fine. Blocking."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
