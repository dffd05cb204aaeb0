"""Disk pressure: freeing local space when the storage disk passes its high water mark.

A check (``DiskPressure.check``, every ``PRESSURE_PERIOD_S`` in ``nvr serve``) reads the
disk's usage with psutil. At or above ``[storage] high_water_percent`` it frees space
until usage is below ``low_water_percent``, in this order:

1. evict local copies of segments already verified in S3, oldest end first (the S3
   copy stays; nothing is lost);
2. delete the oldest unheld segments, lowest-priority group first (general before
   key-area), each through the crash-safe deletion with reason ``disk-pressure`` and
   logged at ERROR.

Held segments are never evicted or deleted for space. If usage is still at or above the
high mark once nothing unheld is left, recording stops (``on_exhausted``) with an alert
at CRITICAL, rather than deleting evidence; it resumes (``on_relieved``) at the first
check below the high mark. Blocking: run ``check`` in a thread.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from nvr.config import StorageConfig
from nvr.index.repo import Index
from nvr.log import fields
from nvr.retention import catalogue
from nvr.retention.catalogue import Candidate
from nvr.retention.deleter import (
    PRESSURE_REASON,
    Deleter,
    ObjectDeleter,
    unlink_durably,
)
from nvr.storage import replicas

log = logging.getLogger(__name__)

PRESSURE_PERIOD_S = 30.0
BATCH = 100
REASON = PRESSURE_REASON

Usage = Callable[[str], Any]  # psutil.disk_usage: .percent, .free, .total
Eviction = Callable[[Candidate], bool]


class ObjectChecker(Protocol):
    """The part of ``nvr.storage.s3.S3Store`` eviction needs: ``head`` (blocking)."""

    def head(self, key: str) -> Any: ...


@dataclass
class PressureStatus:
    """What the last check saw and did, for the log and the API."""

    used_percent: float = 0.0
    evicted: int = 0
    deleted: int = 0
    exhausted: bool = False
    message: str | None = None
    deleted_ids: list[int] = field(default_factory=list)


def verified_eviction(
    store: ObjectChecker, index: Index, root: Path, clock: Callable[[], int]
) -> Eviction:
    """Evicts one local copy after checking its object in S3 (docs/storage.md)."""

    def evict(copy: Candidate) -> bool:
        assert copy.object_key is not None
        info = store.head(copy.object_key)
        if (
            info is None
            or info.size != copy.bytes
            or (copy.checksum is not None and info.checksum_sha256 != copy.checksum)
        ):
            replicas.mark_failed(
                index,
                copy.segment_id,
                "object missing or changed in S3 before eviction",
                clock(),
            )
            return False
        unlink_durably(root / copy.path)
        replicas.mark_evicted(index, copy.segment_id, clock())
        log.warning(
            "disk pressure: local copy evicted %s",
            fields(camera=copy.camera_id, segment=copy.segment_id, bytes=copy.bytes),
        )
        return True

    return evict


class DiskPressure:
    """Keeps the storage disk under its high water mark; see the module docstring."""

    def __init__(
        self,
        index: Index,
        root: Path,
        storage: StorageConfig,
        store: ObjectDeleter | None,
        clock: Callable[[], int],
        *,
        evict: Eviction | None = None,
        usage: Usage = psutil.disk_usage,
        on_exhausted: Callable[[str], None] | None = None,
        on_relieved: Callable[[], None] | None = None,
    ) -> None:
        self.index = index
        self.root = root
        self.high = storage.high_water_percent
        self.low = storage.low_water_percent
        self.deleter = Deleter(index, root, store, clock, actor=REASON)
        self.evict = evict
        self.usage = usage
        self.on_exhausted = on_exhausted
        self.on_relieved = on_relieved
        self.status = PressureStatus()

    def used_percent(self) -> float:
        return float(self.usage(str(self.root)).percent)

    def check(self) -> PressureStatus:
        """One check: frees space if needed, stops or resumes recording. Blocking."""
        status = PressureStatus(
            used_percent=self.used_percent(), exhausted=self.status.exhausted
        )
        if status.used_percent >= self.high:
            log.warning(
                "disk above high water mark %s",
                fields(
                    used_percent=round(status.used_percent, 1),
                    high=self.high,
                    low=self.low,
                ),
            )
            if self.evict is not None:
                status.evicted = self._drain(
                    catalogue.replicated_local_copies, self.evict
                )
            status.deleted = self._drain(
                catalogue.pressure_victims, lambda c: self._delete(c, status)
            )
            status.used_percent = self.used_percent()
        self._stop_or_resume(status)
        self.status = status
        return status

    def _drain(
        self, select: Callable[[Index, int], list[Candidate]], act: Eviction
    ) -> int:
        """Applies ``act`` to selected segments, oldest first, until below the low mark."""
        done = 0
        tried: set[int] = set()
        while self.used_percent() >= self.low:
            page = [c for c in select(self.index, BATCH) if c.segment_id not in tried]
            if not page:
                break
            for candidate in page:
                tried.add(candidate.segment_id)
                done += act(candidate)
                if self.used_percent() < self.low:
                    break
        return done

    def _delete(self, candidate: Candidate, status: PressureStatus) -> bool:
        outcome = self.deleter.delete(candidate.segment_id, REASON)
        if outcome.deletion is None:
            return False
        status.deleted_ids.append(candidate.segment_id)
        return True

    def _stop_or_resume(self, status: PressureStatus) -> None:
        if status.used_percent >= self.high:
            status.exhausted = True
            status.message = (
                f"storage disk {status.used_percent:.1f}% full (high water mark "
                f"{self.high:g}%) and no unheld recording is left to delete: recording "
                "stopped; release holds or free space"
            )
            log.critical(
                "disk full, nothing unheld to delete; recording stopped %s",
                fields(used_percent=round(status.used_percent, 1), root=self.root),
            )
            if self.on_exhausted is not None:
                self.on_exhausted(status.message)
            return
        if status.exhausted:
            status.exhausted = False
            log.warning(
                "disk below high water mark again; recording resumes %s",
                fields(used_percent=round(status.used_percent, 1)),
            )
            if self.on_relieved is not None:
                self.on_relieved()
