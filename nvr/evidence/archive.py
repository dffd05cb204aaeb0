"""The archive audit: walks a camera's segment chain and re-hashes its files.

Reports, per segment, files altered or missing and records whose chain link does not
follow (edited rows, or rows removed without a deletion log entry). Deletions logged by
retention keep their link, so they are explained and never reported as tampering.
Segments are read on whichever tier holds them (the local file, else the S3 object once
evicted). Unlike the rest of ``nvr.evidence`` this module needs the index (and, for
evicted segments, the S3 store).
"""

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nvr.errors import NotFound, ObjectRejected
from nvr.evidence.chain import (
    AuditRecord,
    ChainRecord,
    audit_chain_breaks,
    walk_segment_chain,
)
from nvr.export.package import hash_location
from nvr.index import evidence as evidence_db
from nvr.index.repo import Index
from nvr.storage import replicas
from nvr.storage.reader import ObjectSegment
from nvr.storage.s3 import S3Store

HASH_CHUNK_BYTES = 1024 * 1024
LOCAL = "local"  # Finding.tier values
S3 = "s3"


@dataclass(frozen=True)
class Finding:
    # "altered", "missing", "chain-break", or "unverified" (evicted to S3, no store given)
    kind: str
    record: ChainRecord
    detail: str
    tier: str | None = None  # where the bytes were looked for: LOCAL or S3


@dataclass
class ArchiveAudit:
    camera_id: str
    records: int = 0  # chain records walked (live and deleted)
    hashed: int = 0  # files re-hashed (live records inside the window)
    deleted: int = 0  # records removed by a logged deletion (explained)
    findings: list[Finding] = field(default_factory=list)
    audit_rows: int = 0
    audit_breaks: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings and not self.audit_breaks


def audit_archive(
    index: Index,
    storage_root: Path,
    camera_id: str,
    start_us: int | None = None,
    end_us: int | None = None,
    on_finding: Callable[[Finding], None] | None = None,
    store: S3Store | None = None,
) -> ArchiveAudit:
    """Checks the whole chain of ``camera_id`` and the bytes of segments overlapping
    ``[start_us, end_us)`` (all of them without bounds), then the audit log's chain.

    Each segment is re-hashed where it lives: its local file, else (evicted) its object
    in ``store``, streamed by ranged GETs. Blocking: reads every segment in the window.
    Raises NotFound for a camera the index has never known (a typo must not read as
    a clean audit) and ObjectStoreError when S3 is unreachable or refuses the
    credentials."""
    if index.camera_group(camera_id) is None:
        raise NotFound(f"camera {camera_id!r} is not in the index")
    result = ArchiveAudit(camera_id)

    def report(finding: Finding) -> None:
        result.findings.append(finding)
        if on_finding is not None:
            on_finding(finding)

    # Limitation: a removal of the camera's newest records leaves no later link to break,
    # so it is invisible to the chain; the fix is to anchor the tip elsewhere (the audit
    # log, or a periodic signed checkpoint of each camera's latest link).
    for link in walk_segment_chain(evidence_db.iter_chain_records(index, camera_id)):
        record = link.record
        result.records += 1
        if not link.intact:
            report(
                Finding(
                    "chain-break",
                    record,
                    f"stored link {record.chain_hash} but {link.expected} follows "
                    "from the record before it: this record was edited, or a record "
                    "before it was removed without a deletion log entry",
                )
            )
        if record.deleted_us is not None:
            result.deleted += 1
            continue
        if not _in_window(record, start_us, end_us):
            continue
        result.hashed += 1
        problem = _segment_problem(index, storage_root, store, record)
        if problem is not None:
            report(problem)

    _check_audit_log(index, result)
    return result


def _check_audit_log(index: Index, result: ArchiveAudit) -> None:
    def counted() -> Iterator[AuditRecord]:
        for row in evidence_db.iter_audit_log(index):
            result.audit_rows += 1
            yield row

    for row, detail in audit_chain_breaks(counted()):
        result.audit_breaks.append(f"audit row {row.id}: {detail}")


def _in_window(record: ChainRecord, start_us: int | None, end_us: int | None) -> bool:
    if start_us is not None and record.end_us <= start_us:
        return False
    return end_us is None or record.start_us < end_us


def _segment_problem(
    index: Index, storage_root: Path, store: S3Store | None, record: ChainRecord
) -> Finding | None:
    """Re-hashes the segment on the tier holding it: the local file if present, else its
    S3 object. A Finding if it is missing there or differs. Blocking."""
    path = storage_root / record.path
    try:
        size, digest = _hash_file(path)
    except FileNotFoundError:
        return _object_problem(index, store, record, path)
    return _compare(record, LOCAL, f"local file {path}", size, digest)


def _object_problem(
    index: Index, store: S3Store | None, record: ChainRecord, path: Path
) -> Finding | None:
    """The segment has no local file: checks its S3 copy, if it was ever replicated."""
    key = replicas.object_keys(index, [record.segment_id]).get(record.segment_id)
    if key is None:
        return Finding(
            "missing",
            record,
            f"{path} does not exist, the segment is not "
            "replicated to S3 and no deletion is logged",
            LOCAL,
        )
    if store is None:
        return Finding(
            "unverified",
            record,
            f"{path} was evicted to S3 (key {key}) but no "
            "[s3] section is configured to read it",
            S3,
        )
    where = f"S3 object s3://{store.bucket}/{key}"
    info = store.head(key)
    if info is None:
        return Finding(
            "missing",
            record,
            f"{where} does not exist, the local copy is "
            "evicted and no deletion is logged",
            S3,
        )
    if info.size != record.size:
        return Finding(
            "altered", record, f"{where}: {info.size} bytes, indexed {record.size}", S3
        )
    try:
        digest = hash_location(ObjectSegment(key, info.size, store))
    except ObjectRejected as exc:
        # Note: a 404 or 416 here means the object was deleted or replaced since the HEAD.
        return Finding("missing", record, f"{where} could not be read whole: {exc}", S3)
    return _compare(record, S3, where, info.size, digest)


def _hash_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 (hex) of a local file, streamed. Blocking."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _compare(
    record: ChainRecord, tier: str, where: str, size: int, digest: str
) -> Finding | None:
    if size != record.size:
        return Finding(
            "altered", record, f"{where}: {size} bytes, indexed {record.size}", tier
        )
    if digest != record.sha256:
        return Finding(
            "altered",
            record,
            f"{where}: sha256 {digest}, indexed {record.sha256}",
            tier,
        )
    return None
