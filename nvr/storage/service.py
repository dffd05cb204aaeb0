"""Replication as the server runs it: the S3 store, the upload queue and the evictor.

``nvr serve`` builds one ``Replication`` when ``[s3]`` is configured, starts it after
the index is open and stops it before the index closes. Starting never contacts S3:
the uploader's first bucket probe does, so a wrong credential or a missing bucket is
one clear error in the log and in ``GET /api/v1/storage`` while recording goes on.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from nvr.config import Config, S3Config
from nvr.export.pieces import SegmentLocation
from nvr.index.repo import Index
from nvr.index.rows import SegmentRow
from nvr.log import fields, redact_url
from nvr.storage import replicas
from nvr.storage.evictor import Evictor
from nvr.storage.reader import TieredSegment
from nvr.storage.s3 import S3Store
from nvr.storage.uploader import Uploader
from nvr.timeutil import format_rfc3339, wall_now_us

log = logging.getLogger(__name__)

# How each replication state shows in the recordings list.
TIERS = {
    replicas.ReplicaState.LOCAL.value: "local",
    replicas.ReplicaState.UPLOADING.value: "local",
    replicas.ReplicaState.REPLICATED.value: "local+s3",
    replicas.ReplicaState.EVICTED.value: "s3",
}


class Replication:
    """The running replication of one recorder; see the module docstring."""

    def __init__(
        self,
        config: Config,
        index: Index,
        index_call: Callable[..., Awaitable[Any]],
        *,
        store: S3Store | None = None,
        clock: Callable[[], int] = wall_now_us,
        poll_s: float | None = None,
        evict_interval_s: float | None = None,
    ) -> None:
        assert config.s3 is not None
        self.s3: S3Config = config.s3
        self.index = index
        self.index_call = index_call
        self.root = Path(config.storage.root)
        self.store = store if store is not None else S3Store(config.s3)
        self.evictor = Evictor(
            self.store,
            index,
            index_call,
            self.root,
            config.groups,
            clock=clock,
            **({} if evict_interval_s is None else {"interval_s": evict_interval_s}),
        )
        self.uploader = Uploader(
            self.store,
            index,
            index_call,
            self.root,
            config.s3,
            clock=clock,
            on_replicated=self.evictor.wake,
            **({} if poll_s is None else {"poll_s": poll_s}),
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Starts the upload queue and the evictor as background tasks."""
        log.info(
            "s3 replication starting %s",
            fields(
                endpoint=redact_url(self.s3.endpoint_url or "AWS"),
                bucket=self.s3.bucket,
                object_lock=self.s3.object_lock,
                concurrency=self.s3.upload_concurrency,
            ),
        )
        self._tasks = [
            asyncio.create_task(self.uploader.run(), name="s3-uploader"),
            asyncio.create_task(self.evictor.run(), name="s3-evictor"),
        ]

    async def stop(self) -> None:
        """Cancels both tasks; uploads in flight resume at the next start."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # reading

    async def tiers(self, rows: Sequence[SegmentRow]) -> dict[int, str]:
        """Where each segment lives: ``local``, ``local+s3`` or ``s3``."""
        found = await self.index_call(
            replicas.states, self.index, [row.id for row in rows]
        )
        return {segment_id: TIERS[state] for segment_id, state in found.items()}

    async def locations(self, rows: Sequence[SegmentRow]) -> list[SegmentLocation]:
        """Where to read each segment: its local path while it is only local, else a
        reader falling back to S3 (a replicated local copy may be evicted any moment)."""
        keys = await self.index_call(
            replicas.object_keys, self.index, [row.id for row in rows]
        )
        located: list[SegmentLocation] = []
        for row in rows:
            path = self.root / row.path
            key = keys.get(row.id)
            located.append(
                path if key is None else TieredSegment(path, key, row.bytes, self.store)
            )
        return located

    # status

    async def status_json(self) -> dict[str, Any]:
        """The body of ``GET /api/v1/storage``."""
        backlog = await self.index_call(replicas.backlog, self.index)
        totals = await self.index_call(replicas.totals, self.index)
        errors = await self.index_call(replicas.last_errors, self.index)
        status = self.uploader.status
        oldest = None
        if backlog.oldest_segment_id is not None:
            assert backlog.oldest_start_us is not None
            oldest = {
                "segment": backlog.oldest_segment_id,
                "camera": backlog.oldest_camera_id,
                "start": format_rfc3339(backlog.oldest_start_us),
            }
        return {
            "s3": {
                "enabled": True,
                "endpoint": redact_url(self.s3.endpoint_url or "AWS"),
                "bucket": self.s3.bucket,
                "object_lock": self.s3.object_lock,
                "state": status.state,
                "last_error": status.last_error,
                "last_error_time": _time(status.last_error_us),
                "last_success_time": _time(status.last_success_us),
                "next_retry_time": _time(status.retry_at_us),
            },
            "backlog": {
                "segments": backlog.segments,
                "bytes": backlog.bytes,
                "oldest_unreplicated": oldest,
                "uploading": sorted(status.uploading),
            },
            "replicated": {
                "segments": totals["replicated"].segments,
                "bytes": totals["replicated"].bytes,
            },
            "evicted": {
                "segments": totals["evicted"].segments,
                "bytes": totals["evicted"].bytes,
            },
            "segment_errors": [
                {"segment": sid, "error": error} for sid, error in errors
            ],
        }


def _time(value_us: int | None) -> str | None:
    return None if value_us is None else format_rfc3339(value_us)
