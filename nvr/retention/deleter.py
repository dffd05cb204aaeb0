"""Deleting segments from every tier, a batch at a time, in the crash-safe order of
docs/retention.md.

1. **mark**: one transaction sets ``segments.deleting_us`` on every segment of the batch
   that no hold covers. From here those segments are being deleted, whatever happens.
2. **delete bytes**: unlink every local file, then fsync each directory once; then
   delete the S3 objects (their recorded versions) with ``DeleteObjects``, after
   aborting any unfinished multipart upload. S3 answers per object: a version its
   Object Lock still holds stays, and so does its segment's mark.
3. **remove the rows**: one transaction writes a ``deletions`` row and a ``deletion``
   audit row per segment and removes the segment rows (``replicas`` rows go with them).

A crash after 1 or 2 leaves marked rows; ``complete_marked`` (run at startup and at the
start of every sweep) redoes 2 (each part tolerates "already gone") and 3. No step
leaves a file or object without a row, and no unmarked row lacks its file. An
unreachable S3 (``ObjectStoreError``) propagates once the batch's other segments are
finished: the marks of the rest stay for the next pass. Everything here blocks: call it
from the index thread or a worker thread.
"""

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nvr.errors import ObjectRejected, ObjectStoreError
from nvr.index.repo import Index
from nvr.index.rows import DeletionRow
from nvr.log import fields
from nvr.retention import catalogue
from nvr.retention.catalogue import Candidate
from nvr.timeutil import format_rfc3339

log = logging.getLogger(__name__)

# Test hook, called with the name of each step as it completes (crash tests):
# "marked" (step 1 committed), "file-deleted" (after each unlink), "files-deleted" (all
# unlinked and their directories fsynced), "object-deleted" (after each DeleteObjects
# request), "objects-deleted" (step 2 done), "rows-written" (step 3 written, not yet
# committed), "rows-removed" (step 3 committed).
StepHook = Callable[[str], None]

# S3 takes at most 1000 keys per DeleteObjects request.
OBJECTS_PER_REQUEST = 1000
PRESSURE_REASON = "disk-pressure"


class ObjectDeleter(Protocol):
    """The part of ``nvr.storage.s3.S3Store`` deletion needs (blocking calls)."""

    def delete_many(
        self, objects: Sequence[tuple[str, str | None]]
    ) -> dict[str, ObjectStoreError]: ...

    def abort_multipart(self, key: str, upload_id: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What happened to one segment: ``deleted``, ``held``, ``gone`` or ``blocked``."""

    result: str
    deletion: DeletionRow | None = None


@dataclass
class BatchOutcome:
    """What happened to a batch: the deletions logged, and the segments left."""

    deletions: list[DeletionRow] = field(default_factory=list)
    held: list[int] = field(default_factory=list)  # not marked, or mark withdrawn
    blocked: list[int] = field(default_factory=list)  # marked; S3 refused the object

    def result(self, segment_id: int) -> str:
        if any(d.segment_id == segment_id for d in self.deletions):
            return "deleted"
        if segment_id in self.held:
            return "held"
        if segment_id in self.blocked:
            return "blocked"
        return "gone"


def unlink_durably(path: Path) -> bool:
    """Removes a file and fsyncs its directory; False if it was already gone. Blocking."""
    return unlink_all([path]) == 1


def unlink_all(
    paths: Iterable[Path], on_unlink: Callable[[], None] | None = None
) -> int:
    """Removes the files, then fsyncs each of their directories once, so every removal
    is durable when this returns; files already gone are skipped. Returns how many were
    removed. Blocking."""
    removed = 0
    directories: set[Path] = set()
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
        directories.add(path.parent)
        if on_unlink is not None:
            on_unlink()
    for directory in sorted(directories):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    return removed


class Deleter:
    """Runs the three steps for a batch of segments; see the module docstring."""

    def __init__(
        self,
        index: Index,
        storage_root: Path,
        store: ObjectDeleter | None,
        clock: Callable[[], int],
        actor: str = "retention",
        step_hook: StepHook | None = None,
        objects_per_request: int = OBJECTS_PER_REQUEST,
    ) -> None:
        self.index = index
        self.root = storage_root
        self.store = store
        self.clock = clock
        self.actor = actor
        self._hook = step_hook
        self.objects_per_request = objects_per_request

    def delete(self, segment_id: int, reason: str) -> Outcome:
        """Deletes one segment unless it is held: a batch of one."""
        outcome = self.delete_batch([segment_id], reason)
        deletion = outcome.deletions[0] if outcome.deletions else None
        return Outcome(outcome.result(segment_id), deletion)

    def delete_batch(self, segment_ids: Sequence[int], reason: str) -> BatchOutcome:
        """Deletes the unheld segments among ``segment_ids``; ``reason`` goes into the
        log. Held segments are not marked and are listed in ``held``."""
        marking = catalogue.mark_batch(self.index, segment_ids, reason, self.clock())
        if marking.marked:
            self._step("marked")
        outcome = self.complete_batch(marking.marked)
        outcome.held[:0] = marking.held
        return outcome

    def complete_batch(self, candidates: Sequence[Candidate]) -> BatchOutcome:
        """Steps 2 and 3 for marked segments (also marks left by a crash).

        A mark left by a crash on a segment held since, whose local file is still there,
        is withdrawn instead: the file goes first, so none of its bytes are gone yet.
        """
        outcome = BatchOutcome()
        if not candidates:
            return outcome
        withdrawn = [c for c in candidates if self._withdrawable(c)]
        if withdrawn:
            catalogue.unmark(self.index, [c.segment_id for c in withdrawn])
            for candidate in withdrawn:
                log.warning(
                    "deletion withdrawn: segment held since it was marked %s",
                    _context(candidate),
                )
            outcome.held.extend(c.segment_id for c in withdrawn)
        kept = {c.segment_id for c in withdrawn}
        pending = [c for c in candidates if c.segment_id not in kept]

        unlink_all(
            (self.root / c.path for c in pending), lambda: self._step("file-deleted")
        )
        self._step("files-deleted")
        failures = self._delete_objects(pending)
        self._step("objects-deleted")

        unavailable: ObjectStoreError | None = None
        for candidate in pending:
            error = failures.get(candidate.segment_id)
            if isinstance(error, ObjectRejected):
                # Object Lock still holds the version (retention was shortened below the
                # lock date): the mark stays and every later sweep retries.
                log.warning(
                    "object deletion refused; retried later %s",
                    _context(candidate, error=error),
                )
                outcome.blocked.append(candidate.segment_id)
            elif error is not None and unavailable is None:
                unavailable = error
        done = [c for c in pending if c.segment_id not in failures]
        outcome.deletions = catalogue.finish_batch(
            self.index,
            [c.segment_id for c in done],
            self.actor,
            self.clock(),
            before_commit=lambda: self._step("rows-written"),
        )
        if outcome.deletions:
            self._step("rows-removed")
        self._log_deleted(done, outcome.deletions)
        if unavailable is not None:
            raise unavailable
        return outcome

    def complete_marked(self, batch: int = 200) -> int:
        """Finishes every deletion a crash or a refused object left half done."""
        done = 0
        after: tuple[int, int] | None = None
        while True:
            pending = catalogue.marked(self.index, batch, after=after)
            if not pending:
                return done
            done += len(self.complete_batch(pending).deletions)
            if len(pending) < batch:
                return done
            last = pending[-1]
            assert last.deleting_us is not None
            after = (last.deleting_us, last.segment_id)

    def _withdrawable(self, candidate: Candidate) -> bool:
        return (
            candidate.held
            and candidate.has_local_file
            and (self.root / candidate.path).exists()
        )

    def _delete_objects(
        self, candidates: Sequence[Candidate]
    ) -> dict[int, ObjectStoreError]:
        """Deletes the batch's S3 objects; the segments whose object S3 did not delete,
        with why. Raises nothing for S3 errors: they are per segment."""
        owners = {c.object_key: c for c in candidates if c.object_key is not None}
        if not owners:
            return {}
        if self.store is None:
            # Limitation: with [s3] removed from the config the object cannot be reached;
            # it stays in the bucket (logged with its key) until a lifecycle rule ends it.
            for key, candidate in owners.items():
                log.warning(
                    "s3 not configured; object left in the bucket %s",
                    _context(candidate, key=key),
                )
            return {}
        failures: dict[int, ObjectStoreError] = {}
        for key, candidate in list(owners.items()):
            if candidate.upload_id is None:
                continue
            try:
                self.store.abort_multipart(key, candidate.upload_id)
            except ObjectStoreError as exc:
                failures[candidate.segment_id] = exc
                del owners[key]
        # A versioned bucket (always, with Object Lock) only hides the data behind a
        # delete marker unless the version itself is deleted.
        objects = [(key, c.version_id) for key, c in owners.items()]
        for start in range(0, len(objects), self.objects_per_request):
            chunk = objects[start : start + self.objects_per_request]
            try:
                refused = self.store.delete_many(chunk)
            except ObjectStoreError as exc:
                refused = {key: exc for key, _ in chunk}
            for key, error in refused.items():
                failures[owners[key].segment_id] = error
            self._step("object-deleted")
        return failures

    def _log_deleted(
        self, candidates: Sequence[Candidate], deletions: Sequence[DeletionRow]
    ) -> None:
        """Disk pressure deletes recordings early: each is logged as an error. Other
        deletions are logged one line per batch (and per segment at DEBUG)."""
        logged = {d.segment_id: d for d in deletions}
        for candidate in candidates:
            deletion = logged.get(candidate.segment_id)
            if deletion is None:
                continue
            reason = deletion.reason
            level = logging.ERROR if reason == PRESSURE_REASON else logging.DEBUG
            log.log(level, "segment deleted %s", _context(candidate, reason=reason))
        routine = [d for d in deletions if d.reason != PRESSURE_REASON]
        if routine:
            log.info(
                "segments deleted %s",
                fields(
                    segments=len(routine),
                    bytes=sum(d.bytes for d in routine),
                    cameras=len({d.camera_id for d in routine}),
                    oldest_end=format_rfc3339(min(d.end_us for d in routine)),
                    newest_end=format_rfc3339(max(d.end_us for d in routine)),
                    reason=",".join(sorted({d.reason for d in routine})),
                ),
            )

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
