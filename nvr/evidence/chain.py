"""The two hash chains: a camera's segment records, and the audit log.

Both are pure functions of stored values, so anyone holding the rows can recompute
them (docs/evidence.md gives the exact byte layouts).

Segment chain: each segment record of a camera carries
``SHA-256("nvr-segment-chain/1\\n" camera "\\n" previous "\\n" sha256 "\\n" start_us "\\n"
end_us "\\n" bytes "\\n")`` where ``previous`` is the link of the camera's record indexed
just before it (segment id order), or 64 zeros for its first. A deletion logged by
retention keeps the deleted record's link, so the walk continues across it.

Audit chain: each audit row's ``hash`` is the SHA-256 of the canonical JSON of its fields
and the previous row's hash (64 zeros for the first row).
"""

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from nvr.evidence.format import canonical_json

GENESIS = "0" * 64
SEGMENT_CHAIN_TAG = "nvr-segment-chain/1"


def segment_link(
    previous: str, camera_id: str, sha256: str, start_us: int, end_us: int, size: int
) -> str:
    """The chain link of one segment record following the link ``previous``."""
    text = (
        f"{SEGMENT_CHAIN_TAG}\n{camera_id}\n{previous}\n{sha256}\n{start_us}\n"
        f"{end_us}\n{size}\n"
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def audit_hash(
    previous: str,
    at_us: int,
    actor: str,
    action: str,
    camera_id: str | None,
    subject: str,
    details: str,
) -> str:
    """The hash of one audit row; ``details`` is the stored canonical JSON text."""
    fields: dict[str, Any] = {
        "prev": previous,
        "at_us": at_us,
        "actor": actor,
        "action": action,
        "camera": camera_id,
        "subject": subject,
        "details": details,
    }
    return hashlib.sha256(canonical_json(fields)).hexdigest()


@dataclass(frozen=True)
class ChainRecord:
    """One record of a camera's segment chain, live or deleted, as the index holds it."""

    segment_id: int
    camera_id: str
    sha256: str
    start_us: int
    end_us: int
    size: int
    chain_hash: str | None
    path: str
    deleted_us: int | None = None  # set when the deletions log explains its absence
    deleted_reason: str | None = None


@dataclass(frozen=True)
class Link:
    """A record and whether its stored link follows from the record before it."""

    record: ChainRecord
    intact: bool
    expected: str


def walk_segment_chain(records: Iterable[ChainRecord]) -> Iterator[Link]:
    """Checks each record's link against its predecessor, in segment id order.

    After a break the walk continues from the stored link, so one removed or edited
    record is reported once, not as a cascade.
    """
    previous = GENESIS
    for record in records:
        expected = segment_link(
            previous,
            record.camera_id,
            record.sha256,
            record.start_us,
            record.end_us,
            record.size,
        )
        yield Link(record, record.chain_hash == expected, expected)
        previous = record.chain_hash if record.chain_hash is not None else expected


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at_us: int
    actor: str
    action: str
    camera_id: str | None
    subject: str
    details: str
    prev_hash: str
    hash: str


def audit_chain_breaks(
    rows: Iterable[AuditRecord],
) -> Iterator[tuple[AuditRecord, str]]:
    """Each audit row (in id order) whose hash or back link is wrong, with what is wrong."""
    previous = GENESIS
    for row in rows:
        if row.prev_hash != previous:
            yield (
                row,
                f"prev_hash {row.prev_hash} but the row before has hash {previous}",
            )
        expected = audit_hash(
            row.prev_hash,
            row.at_us,
            row.actor,
            row.action,
            row.camera_id,
            row.subject,
            row.details,
        )
        if row.hash != expected:
            yield row, f"hash {row.hash} but its fields hash to {expected}"
        previous = row.hash
