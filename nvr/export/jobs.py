"""Evidence export jobs: queued by the API, built in the background, one package each.

A job checks every source segment against its ingest SHA-256, plans the clip, and
streams it into a signed package (``nvr.export.package``). File work runs in threads;
at most ``concurrency`` jobs build at once, the rest wait queued.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nvr import __version__
from nvr.errors import NotFound, NvrError, ObjectStoreError, StorageError
from nvr.evidence.signing import key_fingerprint
from nvr.export.clip import ClipPlan, ClipSource, plan_clip
from nvr.export.manifest import ExportFacts, PackedFile, build_manifest, range_gaps
from nvr.export.package import PackageResult, hash_location, write_package
from nvr.export.pieces import SegmentLocation
from nvr.index import evidence as evidence_db
from nvr.index.evidence import ExportRow
from nvr.index.repo import Index
from nvr.index.rows import SegmentRow
from nvr.log import fields
from nvr.segmenter.files import segment_file
from nvr.timeutil import wall_now_us

log = logging.getLogger(__name__)

# Finds where each segment is read (local file or S3 reader); None means local only.
Locate = Callable[[Sequence[SegmentRow]], Awaitable[list[SegmentLocation]]]

IndexCall = Callable[..., Awaitable[Any]]
CHUNK_BYTES = 1024 * 1024
RESTART_ERROR = "the server stopped before the export finished; start a new export"


@dataclass
class ExportProgress:
    """Live progress of a job in this process: bytes handled out of bytes to handle.

    ``total`` grows once the clip is planned (source bytes to check, then clip bytes).
    """

    phase: str  # "queued", "checking sources", "writing"
    done: int = 0
    total: int = 0


class ExportJobs:
    """Runs export jobs; ``start`` before use, ``close`` at shutdown."""

    def __init__(
        self,
        *,
        index: Index,
        index_call: IndexCall,
        storage_root: Path,
        exports_dir: Path,
        key: Ed25519PrivateKey,
        camera_groups: dict[str, str],
        concurrency: int = 2,
        clock: Callable[[], int] = wall_now_us,
        locate: Locate | None = None,
    ) -> None:
        self._index = index
        self._index_call = index_call
        self._storage_root = storage_root
        self.exports_dir = exports_dir
        self._key = key
        self._camera_groups = camera_groups
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._locate = locate
        self._progress: dict[str, ExportProgress] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Creates the exports directory and fails jobs a previous process left behind."""
        await asyncio.to_thread(
            self.exports_dir.mkdir, mode=0o700, parents=True, exist_ok=True
        )
        count = await self._index_call(
            evidence_db.fail_unfinished_exports, self._index, RESTART_ERROR
        )
        if count:
            log.warning("unfinished exports marked failed %s", fields(count=count))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def package_path(self, export_id: str) -> Path:
        return self.exports_dir / f"{export_id}.zip"

    def progress(self, export_id: str) -> ExportProgress | None:
        return self._progress.get(export_id)

    async def submit(
        self,
        camera_id: str,
        start_us: int,
        end_us: int,
        case_id: str,
        reason: str,
        actor: str,
    ) -> ExportRow:
        """Records the job (with its hold and audit row) and starts it in the background."""
        export_id = uuid.uuid4().hex
        row: ExportRow = await self._index_call(
            evidence_db.create_export,
            self._index,
            export_id,
            camera_id,
            start_us,
            end_us,
            case_id,
            reason,
            actor,
        )
        self._progress[export_id] = ExportProgress("queued")
        task = asyncio.create_task(self._run(row), name=f"export-{export_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info(
            "export queued %s",
            fields(export=export_id, camera=camera_id, case=case_id, actor=actor),
        )
        return row

    async def _run(self, row: ExportRow) -> None:
        async with self._slots:
            await self._index_call(
                evidence_db.set_export_state, self._index, row.id, "running"
            )
            try:
                result = await self._build(row)
            except NvrError as exc:
                await self._fail(row, str(exc))
                return
            except OSError as exc:
                # the client sees the reason; the path (server layout) only the log
                log.warning("export file error %s", fields(export=row.id, error=exc))
                await self._fail(row, f"file system error: {exc.strerror or exc}")
                return
            except Exception as exc:
                # Note: the task boundary; without this an unexpected bug would leave the
                # job "running" forever. The traceback is logged, the client gets a reason.
                log.exception("export crashed %s", fields(export=row.id))
                await self._fail(row, f"internal error: {type(exc).__name__}")
                return
            finally:
                self._progress.pop(row.id, None)
        # index_call passes positional arguments only (run_in_executor).
        await self._index_call(
            partial(
                evidence_db.set_export_state,
                package_bytes=result.size,
                package_sha256=result.sha256,
            ),
            self._index,
            row.id,
            "done",
        )
        log.info("export done %s", fields(export=row.id, bytes=result.size))

    async def _fail(self, row: ExportRow, error: str) -> None:
        log.warning("export failed %s", fields(export=row.id, error=error))
        await self._index_call(
            partial(evidence_db.set_export_state, error=error[:1000]),
            self._index,
            row.id,
            "failed",
        )

    async def _build(self, row: ExportRow) -> PackageResult:
        progress = self._progress.setdefault(row.id, ExportProgress("queued"))
        segments: list[SegmentRow] = await self._index_call(
            self._index.segments_overlapping, row.camera_id, row.start_us, row.end_us
        )
        if not segments:
            raise NotFound("no recording of the camera in the requested range")
        gaps = await self._index_call(
            self._index.gaps_overlapping, row.camera_id, row.start_us, row.end_us
        )
        chain_hashes = await self._index_call(
            evidence_db.segment_chain_hashes,
            self._index,
            [segment.id for segment in segments],
        )
        facts = ExportFacts(
            export_id=row.id,
            camera_id=row.camera_id,
            camera_group=self._camera_groups.get(row.camera_id),
            case_id=row.case_id,
            reason=row.reason,
            exported_by=row.actor,
            requested_start_us=row.start_us,
            requested_end_us=row.end_us,
            segments=tuple(segments),
            chain_hashes=chain_hashes,
            gaps=range_gaps(segments, gaps, row.start_us, row.end_us),
            nvr_version=__version__,
            key_sha256=key_fingerprint(self._key.public_key()),
        )
        locations = await self._locations(facts.segments)
        return await asyncio.to_thread(self._package, facts, locations, progress)

    async def _locations(self, segments: Sequence[SegmentRow]) -> list[SegmentLocation]:
        """Where each source is read: the local file, or S3 once its copy was evicted."""
        if self._locate is not None:
            return await self._locate(segments)
        return [segment_file(self._storage_root, segment.path) for segment in segments]

    def _package(
        self,
        facts: ExportFacts,
        locations: Sequence[SegmentLocation],
        progress: ExportProgress,
    ) -> PackageResult:
        """Checks the sources, plans the clip and writes the package. Blocking."""
        progress.phase = "checking sources"
        progress.total = sum(segment.bytes for segment in facts.segments)
        self._check_sources(facts.segments, locations, progress)

        sources = [
            self._clip_source(segment, location)
            for segment, location in zip(facts.segments, locations, strict=True)
        ]
        plan: ClipPlan = plan_clip(
            sources, facts.requested_start_us, facts.requested_end_us
        )
        progress.phase = "writing"
        checked = progress.done
        progress.total = checked + plan.size
        created_us = self._clock()

        def build(files: list[PackedFile]) -> dict[str, Any]:
            return build_manifest(facts, plan.start_us, plan.end_us, files, created_us)

        def advance(written: int) -> None:
            progress.done = checked + written

        return write_package(
            self.package_path(facts.export_id),
            plan.size,
            plan.iter_chunks(chunk_size=CHUNK_BYTES),
            build,
            self._key,
            created_us,
            advance,
        )

    def _check_sources(
        self,
        segments: tuple[SegmentRow, ...],
        locations: Sequence[SegmentLocation],
        progress: ExportProgress,
    ) -> None:
        """Fails the export if any source no longer matches its ingest SHA-256."""
        for segment, location in zip(segments, locations, strict=True):
            before = progress.done

            def advance(done: int, before: int = before) -> None:
                progress.done = before + done

            try:
                digest = hash_location(location, advance)
            except FileNotFoundError as exc:
                raise StorageError(
                    f"segment {segment.id} ({segment.path}) is missing"
                ) from exc
            except ObjectStoreError as exc:
                # An evicted segment's object gone, shorter than indexed, or S3 unreachable.
                raise StorageError(
                    f"segment {segment.id} ({location}) cannot be read: {exc}"
                ) from exc
            if digest != segment.sha256:
                raise StorageError(
                    f"segment {segment.id} ({segment.path}) does not match its "
                    f"ingest sha256"
                )
            progress.done = before + segment.bytes

    def _clip_source(
        self, segment: SegmentRow, location: SegmentLocation
    ) -> ClipSource:
        return ClipSource(
            path=location,
            start_us=segment.start_us,
            end_us=segment.end_us,
            timescale=segment.timescale,
            keyframes=tuple(segment.keyframes),
            size=segment.bytes,
        )
