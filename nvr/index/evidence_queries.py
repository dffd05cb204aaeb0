"""In-transaction helpers for evidence: the segment chain tip, holds, the audit log.

Used inside ``Index`` write transactions, so a link or audit row is committed together
with the change it describes.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, insert, select, text
from sqlalchemy.orm import Session

from nvr.evidence.chain import GENESIS, audit_hash
from nvr.evidence.format import canonical_json
from nvr.index.models import AuditEntry, Deletion, Hold, Segment

# Key of the PostgreSQL advisory lock serializing audit appends: two writers must not
# both chain onto the same last row. Any fixed 64-bit number unique to this use.
_AUDIT_LOCK_KEY = 0x6E7672_61756474  # "nvr" "audt"


def chain_tip(session: Session, camera_id: str) -> str:
    """The link of the camera's newest chain record, live or deleted, or GENESIS.

    Call with the camera row locked, so no other writer extends the chain meanwhile.
    """
    live = session.execute(
        select(Segment.id, Segment.chain_hash)
        .where(Segment.camera_id == camera_id)
        .order_by(Segment.id.desc())
        .limit(1)
    ).first()
    gone = session.execute(
        select(Deletion.segment_id, Deletion.chain_hash)
        .where(Deletion.camera_id == camera_id, Deletion.chain_hash.is_not(None))
        .order_by(Deletion.segment_id.desc())
        .limit(1)
    ).first()
    candidates = [row for row in (live, gone) if row is not None and row[1] is not None]
    if not candidates:
        return GENESIS
    return str(max(candidates, key=lambda row: row[0])[1])


def segment_is_held() -> ColumnElement[bool]:
    """True for a segment overlapping an unreleased hold on its camera (for WHERE)."""
    return exists().where(
        and_(
            Hold.camera_id == Segment.camera_id,
            Hold.released_us.is_(None),
            Hold.start_us < Segment.end_us,
            Hold.end_us > Segment.start_us,
        )
    )


def append_audit(
    session: Session,
    at_us: int,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    camera_id: str | None = None,
) -> AuditEntry:
    """Adds one audit row chained onto the newest one, inside the caller's transaction."""
    (values,) = _chained(
        _audit_tail(session), at_us, actor, action, [(subject, details, camera_id)]
    )
    entry = AuditEntry(**values)
    session.add(entry)
    session.flush()
    return entry


AuditItem = tuple[str, dict[str, Any] | None, str | None]  # subject, details, camera


def append_audits(
    session: Session,
    at_us: int,
    actor: str,
    action: str,
    items: Sequence[AuditItem],
) -> None:
    """Adds one audit row per item, in order, chained onto the newest row and onto each
    other, inside the caller's transaction: the rows ``append_audit`` called once per
    item would write, with one lock, one read of the chain's end and one INSERT."""
    if not items:
        return
    rows = _chained(_audit_tail(session), at_us, actor, action, items)
    # Note: ids must follow the chain order; sort_by_parameter_order makes SQLAlchemy
    # insert the rows in list order on every backend (PostgreSQL: INSERT ... SELECT
    # ... ORDER BY), so each row's id is above its predecessor's.
    session.execute(
        insert(AuditEntry).returning(AuditEntry.id, sort_by_parameter_order=True), rows
    )


def _audit_tail(session: Session) -> str:
    """The newest audit row's hash (GENESIS for none), taking the append lock first."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY}
        )
    previous = session.scalar(
        select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    )
    return previous or GENESIS


def _chained(
    previous: str, at_us: int, actor: str, action: str, items: Sequence[AuditItem]
) -> list[dict[str, Any]]:
    """The column values of audit rows for ``items``, each chained onto the one before."""
    rows = []
    for subject, details, camera_id in items:
        details_text = canonical_json(details or {}).decode("utf-8")
        digest = audit_hash(
            previous, at_us, actor, action, camera_id, subject, details_text
        )
        rows.append(
            {
                "at_us": at_us,
                "actor": actor,
                "action": action,
                "camera_id": camera_id,
                "subject": subject,
                "details": details_text,
                "prev_hash": previous,
                "hash": digest,
            }
        )
        previous = digest
    return rows
