"""Deleting one segment from every tier, in the crash-safe order of docs/retention.md.

1. **mark**: ``segments.deleting_us`` is set, in a transaction that refuses a held
   segment. From here the segment is being deleted, whatever happens.
2. **delete bytes**: unlink the local file and fsync its directory, then delete the
   S3 object (its recorded version, and any unfinished multipart upload).
3. **remove the row**: one transaction writes the ``deletions`` row and the audit row
   and removes the segment row (its ``replicas`` row goes with it).

A crash after 1 or 2 leaves a marked row; ``complete_marked`` (run at startup and at
the start of every sweep) redoes 2 (each part tolerates "already gone") and 3. No step
leaves a file or object without a row, and no unmarked row lacks its file. An
unreachable S3 (``ObjectStoreError``) propagates: the mark stays for the next pass.
Everything here blocks: call it from the index thread or a worker thread.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nvr.errors import ObjectRejected
from nvr.index.repo import Index
from nvr.index.rows import DeletionRow
from nvr.log import fields
from nvr.retention import catalogue
from nvr.retention.catalogue import Candidate
from nvr.timeutil import format_rfc3339

log = logging.getLogger(__name__)

# Test hook: called with "marked", "file-deleted", "object-deleted" after each step.
StepHook = Callable[[str], None]


class ObjectDeleter(Protocol):
    """The part of ``nvr.storage.s3.S3Store`` deletion needs (blocking calls)."""

    def delete(self, key: str, version_id: str | None = None) -> None: ...

    def abort_multipart(self, key: str, upload_id: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What happened to one segment: ``deleted``, ``held``, ``gone`` or ``blocked``."""

    result: str
    deletion: DeletionRow | None = None


def unlink_durably(path: Path) -> bool:
    """Removes a file and fsyncs its directory; False if it was already gone. Blocking."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return True


class Deleter:
    """Runs the three steps for one segment at a time; see the module docstring."""

    def __init__(
        self,
        index: Index,
        storage_root: Path,
        store: ObjectDeleter | None,
        clock: Callable[[], int],
        actor: str = "retention",
        step_hook: StepHook | None = None,
    ) -> None:
        self.index = index
        self.root = storage_root
        self.store = store
        self.clock = clock
        self.actor = actor
        self._hook = step_hook

    def delete(self, segment_id: int, reason: str) -> Outcome:
        """Deletes the segment unless it is held; ``reason`` goes into the log."""
        candidate = catalogue.mark_deleting(
            self.index, segment_id, reason, self.clock()
        )
        if candidate is None:
            return Outcome("held" if self.index.segment_by_id(segment_id) else "gone")
        self._step("marked")
        return self.complete(candidate)

    def complete(self, candidate: Candidate) -> Outcome:
        """Steps 2 and 3 for a marked segment (also a mark left by a crash).

        A mark left by a crash on a segment held since, whose local file is still there,
        is withdrawn instead: the file goes first, so none of its bytes are gone yet.
        """
        path = self.root / candidate.path
        if candidate.held and candidate.has_local_file and path.exists():
            catalogue.unmark(self.index, [candidate.segment_id])
            log.warning(
                "deletion withdrawn: segment held since it was marked %s",
                _context(candidate),
            )
            return Outcome("held")
        unlink_durably(path)
        self._step("file-deleted")
        try:
            self._delete_object(candidate)
        except ObjectRejected as exc:
            # Object Lock still holds the version (retention was shortened below the
            # lock date): the mark stays and every later sweep retries.
            log.warning(
                "object deletion refused; retried later %s",
                _context(candidate, error=exc),
            )
            return Outcome("blocked")
        self._step("object-deleted")
        deletion = catalogue.finish_deletion(
            self.index, candidate.segment_id, self.actor, self.clock()
        )
        if deletion is None:
            return Outcome("gone")
        reason = deletion.reason
        level = logging.ERROR if reason == "disk-pressure" else logging.INFO
        log.log(level, "segment deleted %s", _context(candidate, reason=reason))
        return Outcome("deleted", deletion)

    def complete_marked(self, batch: int = 200) -> int:
        """Finishes every deletion a crash or a refused object left half done."""
        done = 0
        while True:
            pending = catalogue.marked(self.index, batch)
            finished = [self.complete(candidate) for candidate in pending]
            done += sum(1 for outcome in finished if outcome.result == "deleted")
            if len(pending) < batch or all(o.result != "deleted" for o in finished):
                return done

    def _delete_object(self, candidate: Candidate) -> None:
        if candidate.object_key is None:
            return
        if self.store is None:
            # Limitation: with [s3] removed from the config the object cannot be reached;
            # it stays in the bucket (logged with its key) until a lifecycle rule ends it.
            log.warning(
                "s3 not configured; object left in the bucket %s",
                _context(candidate, key=candidate.object_key),
            )
            return
        if candidate.upload_id is not None:
            self.store.abort_multipart(candidate.object_key, candidate.upload_id)
        # A versioned bucket (always, with Object Lock) only hides the data behind a
        # delete marker unless the version itself is deleted.
        self.store.delete(candidate.object_key, candidate.version_id)

    def _step(self, name: str) -> None:
        if self._hook is not None:
            self._hook(name)


def _context(candidate: Candidate, **extra: object) -> str:
    return fields(
        camera=candidate.camera_id,
        segment=candidate.segment_id,
        group=candidate.group,
        start=format_rfc3339(candidate.start_us),
        end=format_rfc3339(candidate.end_us),
        bytes=candidate.bytes,
        tier=candidate.tier,
        **extra,
    )
