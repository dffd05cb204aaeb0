"""The upload queue: copies every indexed segment to S3, oldest first, and verifies it.

One asyncio task polls the index: it gives new segments a ``local`` row, then starts
uploads of the oldest pending ones, at most ``upload_concurrency`` at once. Each upload
runs its blocking boto3 calls in the uploader's own thread pool; index writes go through
the server's single index thread. The procedure per segment (docs/storage.md):

1. If an earlier attempt may have stored it, ``head`` the key: an object of the right
   size and checksum is taken as is (nothing is uploaded twice); an unfinished
   multipart upload recorded in the row is aborted.
2. Mark the row ``uploading`` (attempts + 1), then send the body with its SHA-256 so
   the server rejects a corrupted one; multipart records its upload id first.
3. ``head`` with checksum mode: size, checksum and lock must match; only then is the
   row marked ``replicated``.

S3 failing as a whole (unreachable, 5xx, refused credentials) stops all uploads; a
probe of the bucket retries with a doubling delay, and the queue drains by itself when
it passes. One object failing (bad digest, missing file) delays only that segment.
"""

import asyncio
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nvr.config import S3Config
from nvr.errors import (
    ObjectRejected,
    ObjectStoreError,
    ObjectStoreRefused,
    ObjectStoreUnavailable,
    StorageError,
)
from nvr.index.repo import Index
from nvr.log import fields
from nvr.storage import replicas
from nvr.storage.keys import composite_sha256, retain_until_us, sha256_base64
from nvr.storage.replicas import QueueItem
from nvr.storage.s3 import LockMode, ObjectInfo, S3Store
from nvr.timeutil import format_rfc3339, wall_now_us

log = logging.getLogger(__name__)

T = TypeVar("T")
MIB = 1024 * 1024
POLL_S = 2.0  # how often the index is checked for new segments
RETRY_INITIAL_S = 1.0
# An Object Lock date is stored with second precision.
LOCK_SLACK_US = 1_000_000
LOCK_MARGIN_US = 60 * 1_000_000


@dataclass
class ReplicationStatus:
    """What ``GET /api/v1/storage`` shows of the uploader; mutated on the event loop."""

    state: str = "starting"  # starting | ok | unavailable | refused
    last_error: str | None = None
    last_error_us: int | None = None
    last_success_us: int | None = None
    retry_at_us: int | None = None
    uploading: set[int] = field(default_factory=set)


class Backoff:
    """A delay doubling from ``initial_s`` up to ``max_s``; reset after a success."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._next_s = initial_s

    def next(self) -> float:
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next_s = self.initial_s


class Uploader:
    """Copies pending segments to S3 until cancelled; see the module docstring."""

    def __init__(
        self,
        store: S3Store,
        index: Index,
        index_call: Callable[..., Awaitable[Any]],
        storage_root: Path,
        config: S3Config,
        *,
        clock: Callable[[], int] = wall_now_us,
        on_replicated: Callable[[], None] | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.store = store
        self.index = index
        self.index_call = index_call
        self.root = storage_root
        self.config = config
        self.clock = clock
        self.status = ReplicationStatus()
        self._on_replicated = on_replicated
        self._poll_s = poll_s
        self._executor = ThreadPoolExecutor(
            config.upload_concurrency + 1, thread_name_prefix="s3-upload"
        )
        self._backoff = Backoff(RETRY_INITIAL_S, config.retry_max_seconds)
        self._segment_backoff: dict[int, Backoff] = {}
        self._not_before: dict[int, float] = {}  # segment id -> loop time
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._ready = False
        self._retry_at = 0.0  # loop time of the next bucket probe while not ready
        self._after_id = 0
        self._wake = asyncio.Event()

    # lifecycle

    async def run(self) -> None:
        """Runs the queue until cancelled; in-flight uploads are cancelled with it and
        resume on the next start (their rows stay ``uploading``)."""
        try:
            while True:
                await self._step()
                await self._sleep(self._poll_s)
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._executor.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """Checks the queue now instead of at the next poll (a segment was indexed)."""
        self._wake.set()

    async def drain(self, timeout_s: float) -> bool:
        """Test helper: steps until nothing is pending or uploading; True if drained."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            await self._step()
            backlog = await self.index_call(replicas.backlog, self.index)
            if backlog.segments == 0 and not self._tasks:
                return True
            await self._sleep(min(0.2, self._poll_s))
        return False

    async def _step(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._ready:
            if loop.time() < self._retry_at:
                return
            if not await self._probe():
                return
        self._after_id = await self.index_call(
            replicas.enqueue_new,
            self.index,
            self.config.prefix,
            self._after_id,
            self.clock(),
        )
        await self._launch()

    async def _sleep(self, seconds: float) -> None:
        if not self._ready:
            loop = asyncio.get_running_loop()
            seconds = max(0.05, min(seconds, self._retry_at - loop.time()))
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _probe(self) -> bool:
        """Checks the bucket (and its Object Lock); True when uploads may go on."""
        try:
            await self._blocking(
                self.store.check_bucket, self.config.object_lock != "off"
            )
        except ObjectStoreError as exc:
            self._block(exc)
            return False
        self._ready = True
        if self.status.state != "ok":
            log.info("s3 replication ready %s", fields(bucket=self.store.bucket))
        self.status.state = "ok"
        self.status.retry_at_us = None
        return True

    def _block(self, exc: ObjectStoreError) -> None:
        """Stops all uploads until the next probe, logging each new error once."""
        loop = asyncio.get_running_loop()
        delay_s = self._backoff.next()
        self._ready = False
        self._retry_at = loop.time() + delay_s
        state = "refused" if isinstance(exc, ObjectStoreRefused) else "unavailable"
        message = str(exc)
        if message != self.status.last_error or state != self.status.state:
            level = logging.ERROR if state == "refused" else logging.WARNING
            log.log(
                level,
                "s3 replication paused %s",
                fields(state=state, error=message, retry_s=round(delay_s, 1)),
            )
        self.status.state = state
        self.status.last_error = message
        self.status.last_error_us = self.clock()
        self.status.retry_at_us = self.clock() + int(delay_s * 1_000_000)

    async def _launch(self) -> None:
        free = self.config.upload_concurrency - len(self._tasks)
        if free <= 0:
            return
        now = asyncio.get_running_loop().time()
        waiting = {sid for sid, at in self._not_before.items() if at > now}
        items = await self.index_call(
            replicas.next_batch, self.index, free, set(self._tasks) | waiting
        )
        for item in items:
            task = asyncio.create_task(self._replicate(item))
            self._tasks[item.segment_id] = task
            self.status.uploading.add(item.segment_id)
            task.add_done_callback(functools.partial(self._finished, item.segment_id))

    def _finished(self, segment_id: int, task: asyncio.Task[None]) -> None:
        self._tasks.pop(segment_id, None)
        self.status.uploading.discard(segment_id)
        self._wake.set()
        if task.cancelled() or task.exception() is None:
            return
        # A bug in one upload must not stop replication: log it, retry the segment later.
        log.error(
            "segment upload crashed %s",
            fields(segment=segment_id),
            exc_info=task.exception(),
        )
        loop = asyncio.get_running_loop()
        self._not_before[segment_id] = loop.time() + self.config.retry_max_seconds

    # one segment

    async def _replicate(self, item: QueueItem) -> None:
        """Replicates one segment; failures are recorded, never raised."""
        context = fields(
            camera=item.camera_id, segment=item.segment_id, key=item.object_key
        )
        try:
            await self._upload_and_verify(item)
        except (ObjectStoreUnavailable, ObjectStoreRefused) as exc:
            await self._record_failure(item, str(exc))
            if self._ready:
                self._block(exc)
            return
        except (ObjectRejected, OSError) as exc:
            delay_s = self._segment_backoff.setdefault(
                item.segment_id, Backoff(RETRY_INITIAL_S, self.config.retry_max_seconds)
            ).next()
            self._not_before[item.segment_id] = (
                asyncio.get_running_loop().time() + delay_s
            )
            log.warning(
                "segment upload failed %s %s",
                context,
                fields(error=str(exc), retry_s=round(delay_s, 1)),
            )
            await self._record_failure(item, str(exc))
            return
        except StorageError as exc:
            log.error(
                "replication state not recorded %s %s", context, fields(error=exc)
            )
            return
        self._segment_backoff.pop(item.segment_id, None)
        self._not_before.pop(item.segment_id, None)
        self._backoff.reset()
        self.status.last_success_us = self.clock()
        log.debug("segment replicated %s", context)
        if self._on_replicated is not None:
            self._on_replicated()

    async def _record_failure(self, item: QueueItem, error: str) -> None:
        try:
            await self.index_call(
                replicas.mark_failed, self.index, item.segment_id, error, self.clock()
            )
        except StorageError as exc:
            log.error(
                "replication failure not recorded %s",
                fields(segment=item.segment_id, error=exc),
            )

    async def _upload_and_verify(self, item: QueueItem) -> None:
        lock = self._lock(item)
        path = self.root / item.path
        if item.attempts > 0 or item.state == replicas.ReplicaState.UPLOADING:
            if await self._already_stored(item, path, lock):
                return
        await self.index_call(
            replicas.mark_uploading, self.index, item.segment_id, None, self.clock()
        )
        if item.bytes < self.config.multipart_threshold_mb * MIB:
            body = await self._blocking(_read_whole, path, item.bytes)
            expected = sha256_base64(item.sha256)
            await self._blocking(self.store.put, item.object_key, body, expected, lock)
        else:
            expected = await self._upload_parts(item, path, lock)
        info = await self._blocking(self.store.head, item.object_key)
        _verify(info, item, expected, lock)
        assert info is not None  # _verify raised otherwise
        await self.index_call(
            replicas.mark_replicated,
            self.index,
            item.segment_id,
            info.checksum_sha256,
            info.version_id,
            None if lock is None else lock[1],
            self.clock(),
        )

    async def _already_stored(
        self, item: QueueItem, path: Path, lock: tuple[LockMode, int] | None
    ) -> bool:
        """After a crash or a lost answer: True (and the row marked) if the object is
        already there intact; aborts a leftover multipart upload otherwise."""
        info = await self._blocking(self.store.head, item.object_key)
        if info is not None:
            expected = await self._blocking(self._expected_checksum, path, item)
            try:
                _verify(info, item, expected, lock)
            except ObjectRejected:
                log.info(
                    "stored object differs, uploading again %s",
                    fields(segment=item.segment_id, key=item.object_key),
                )
            else:
                await self.index_call(
                    replicas.mark_replicated,
                    self.index,
                    item.segment_id,
                    info.checksum_sha256,
                    info.version_id,
                    None if lock is None else lock[1],
                    self.clock(),
                )
                log.info(
                    "segment found already stored %s",
                    fields(segment=item.segment_id, key=item.object_key),
                )
                return True
        if item.upload_id is not None:
            await self._blocking(
                self.store.abort_multipart, item.object_key, item.upload_id
            )
        return False

    async def _upload_parts(
        self, item: QueueItem, path: Path, lock: tuple[LockMode, int] | None
    ) -> str:
        """Multipart upload with a SHA-256 per part; returns the composite checksum."""
        upload_id = await self._blocking(
            self.store.create_multipart, item.object_key, lock
        )
        await self.index_call(
            replicas.set_upload_id, self.index, item.segment_id, upload_id, self.clock()
        )
        part_bytes = self.config.part_size_mb * MIB
        whole = hashlib.sha256()
        parts: list[tuple[int, str, str]] = []
        digests: list[bytes] = []
        for number, offset in enumerate(range(0, item.bytes, part_bytes), start=1):
            length = min(part_bytes, item.bytes - offset)
            body = await self._blocking(_read_part, path, offset, length)
            whole.update(body)
            digest = hashlib.sha256(body).digest()
            checksum = sha256_base64(digest.hex())
            etag = await self._blocking(
                self.store.upload_part,
                item.object_key,
                upload_id,
                number,
                body,
                checksum,
            )
            parts.append((number, etag, checksum))
            digests.append(digest)
        if whole.hexdigest() != item.sha256:
            # Parts are checked against checksums computed here, so only this comparison
            # catches a local file that no longer matches what was indexed.
            await self._blocking(self.store.abort_multipart, item.object_key, upload_id)
            raise ObjectRejected(
                f"{path}: content no longer matches its indexed SHA-256"
            )
        await self._blocking(
            self.store.complete_multipart, item.object_key, upload_id, parts
        )
        return composite_sha256(digests)

    def _expected_checksum(self, path: Path, item: QueueItem) -> str:
        """The checksum S3 reports for this segment as nvr uploads it. Blocking."""
        if item.bytes < self.config.multipart_threshold_mb * MIB:
            return sha256_base64(item.sha256)
        part_bytes = self.config.part_size_mb * MIB
        digests = [
            hashlib.sha256(
                _read_part(path, offset, min(part_bytes, item.bytes - offset))
            ).digest()
            for offset in range(0, item.bytes, part_bytes)
        ]
        return composite_sha256(digests)

    def _lock(self, item: QueueItem) -> tuple[LockMode, int] | None:
        mode = self.config.object_lock
        if mode == "off":
            return None
        lock_mode: LockMode = "COMPLIANCE" if mode == "compliance" else "GOVERNANCE"
        until_us = retain_until_us(item.end_us, item.retention_days)
        if until_us <= self.clock() + LOCK_MARGIN_US:
            # Note: S3 refuses a retain-until date in the past; such a segment is already
            # past its retention (a long backlog), so it is stored unlocked.
            return None
        return lock_mode, until_us

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args)
        )


def _verify(
    info: ObjectInfo | None,
    item: QueueItem,
    expected: str,
    lock: tuple[LockMode, int] | None,
) -> None:
    """Raises ObjectRejected unless the stored object is the segment, locked as asked."""
    if info is None:
        raise ObjectRejected(f"{item.object_key}: not found after upload")
    if info.size != item.bytes:
        raise ObjectRejected(
            f"{item.object_key}: stored size {info.size} bytes, "
            f"segment has {item.bytes}"
        )
    if info.checksum_sha256 != expected:
        raise ObjectRejected(
            f"{item.object_key}: stored SHA-256 {info.checksum_sha256} "
            f"is not {expected}"
        )
    if lock is None:
        return
    mode, until_us = lock
    if info.lock_mode != mode or (info.retain_until_us or 0) < until_us - LOCK_SLACK_US:
        shown = (
            None
            if info.retain_until_us is None
            else format_rfc3339(info.retain_until_us)
        )
        raise ObjectRejected(
            f"{item.object_key}: lock is {info.lock_mode} until {shown}, "
            f"expected {mode} until {format_rfc3339(until_us)}"
        )


def _read_whole(path: Path, size: int) -> bytes:
    """The whole segment file, which must be ``size`` bytes. Blocking."""
    data = path.read_bytes()
    if len(data) != size:
        raise ObjectRejected(f"{path}: {len(data)} bytes on disk, indexed as {size}")
    return data


def _read_part(path: Path, offset: int, length: int) -> bytes:
    """``length`` bytes of the file at ``offset``. Blocking."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    if len(data) != length:
        raise ObjectRejected(f"{path}: shorter than its indexed size")
    return data
