"""The catalogue's tables as SQLAlchemy 2 typed declarative models.

Every instant is a BigInteger of UTC microseconds named ``*_us``; media values are ticks
of the segment's ``timescale``. The schema itself is created only by the Alembic
revisions in ``nvr/index/migrations``; a test checks that these models and the
migrations agree.

``segments.keyframes`` is Text holding compact JSON: a list of ``[ticks, offset]`` pairs
(video ticks from the segment's start, byte offset of the fragment starting there), e.g.
``[[0,1024],[90000,181233]]``. JSON keeps rows readable from ``sqlite3``/``psql`` and
costs about 1 KB for a 60 s segment with 1 s GOPs.
"""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Note: explicit names so the Alembic revisions can refer to constraints and indexes.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), never a BIGINT one.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

ID_LENGTH = 64
PATH_LENGTH = 1024
REASON_LENGTH = 64
CODEC_LENGTH = 32


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Group(Base):
    """A retention group; cameras belong to exactly one."""

    __tablename__ = "groups"

    name: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    retention_days: Mapped[int] = mapped_column(Integer)
    created_us: Mapped[int] = mapped_column(BigInteger)
    # retention (issue 4, revision 0005): NULL local_days keeps local copies until
    # retention; NULL priority counts as 0 (lowest, first to lose space).
    local_days: Mapped[float | None] = mapped_column(Float)
    priority: Mapped[int | None] = mapped_column(Integer)


class Camera(Base):
    """A camera known to the index. Its URL is not stored: it may carry credentials."""

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    group_name: Mapped[str] = mapped_column(ForeignKey("groups.name"), index=True)
    created_us: Mapped[int] = mapped_column(BigInteger)


class Run(Base):
    """One unbroken connection of a camera; ``id`` is the recorder's uuid hex."""

    __tablename__ = "runs"
    __table_args__ = (Index(None, "camera_id", "started_us"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    started_us: Mapped[int] = mapped_column(BigInteger)
    ended_us: Mapped[int | None] = mapped_column(BigInteger)
    end_reason: Mapped[str | None] = mapped_column(String(REASON_LENGTH))


class Segment(Base):
    """One closed segment file covering wall time ``[start_us, end_us)``."""

    __tablename__ = "segments"
    __table_args__ = (
        Index(None, "camera_id", "start_us"),
        Index(None, "camera_id", "end_us"),
        CheckConstraint("end_us > start_us", name="end_after_start"),
        CheckConstraint("bytes > 0", name="bytes_positive"),
        # Note: AUTOINCREMENT so SQLite never reuses the id of a deleted newest segment,
        # which the deletions log and API clients may still hold.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH), unique=True)
    start_us: Mapped[int] = mapped_column(BigInteger)
    end_us: Mapped[int] = mapped_column(BigInteger)
    media_start: Mapped[int] = mapped_column(BigInteger)
    media_duration: Mapped[int] = mapped_column(BigInteger)
    timescale: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    video_codec: Mapped[str] = mapped_column(String(CODEC_LENGTH))
    audio_codec: Mapped[str | None] = mapped_column(String(CODEC_LENGTH))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    keyframes: Mapped[str] = mapped_column(Text)
    created_us: Mapped[int] = mapped_column(BigInteger)
    # evidence (issue 5): link of the camera's segment hash chain, see nvr.evidence.chain.
    # Note: nullable only because SQLite cannot add a NOT NULL column without a default;
    # revision 0003 fills it for every existing row and add_segment always sets it.
    chain_hash: Mapped[str | None] = mapped_column(String(64))
    # retention (issue 4, revision 0005): set when this segment's deletion began; its
    # file and object are removed next, then the row (docs/retention.md).
    deleting_us: Mapped[int | None] = mapped_column(BigInteger, index=True)
    deleting_reason: Mapped[str | None] = mapped_column(String(REASON_LENGTH))


class Gap(Base):
    """An interval ``[start_us, end_us)`` with no recording, and why."""

    __tablename__ = "gaps"
    __table_args__ = (
        Index(None, "camera_id", "start_us"),
        Index(None, "camera_id", "end_us"),
        CheckConstraint("end_us > start_us", name="end_after_start"),
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    start_us: Mapped[int] = mapped_column(BigInteger)
    end_us: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(REASON_LENGTH))
    created_us: Mapped[int] = mapped_column(BigInteger)


class Deletion(Base):
    """Append-only log of deleted segments; retention writes one row per file."""

    __tablename__ = "deletions"
    __table_args__ = (Index(None, "camera_id", "deleted_us"),)

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    # Note: no foreign key, the segment row is gone by design.
    segment_id: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH))
    start_us: Mapped[int] = mapped_column(BigInteger)
    end_us: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(REASON_LENGTH))
    deleted_us: Mapped[int] = mapped_column(BigInteger)
    # evidence (issue 5): the deleted segment's hash and chain link, so the archive
    # audit can walk the chain across it (NULL for deletions logged before 0003).
    sha256: Mapped[str | None] = mapped_column(String(64))
    chain_hash: Mapped[str | None] = mapped_column(String(64))


class Token(Base):
    """An API token (issue 8). ``id`` is the public lookup part of the bearer string;
    only the SHA-256 hex of the secret part is kept. ``cameras``/``groups`` are JSON
    lists scoping camera routes, NULL meaning unscoped; ``grants`` a JSON list of
    permissions added to the role's. Revoked rows stay, so the name an
    audit entry carries always resolves."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    cameras: Mapped[str | None] = mapped_column(Text)
    groups: Mapped[str | None] = mapped_column(Text)
    grants: Mapped[str | None] = mapped_column(Text)
    created_us: Mapped[int] = mapped_column(BigInteger)
    revoked_us: Mapped[int | None] = mapped_column(BigInteger)


# evidence (issue 5): holds, export jobs and the audit log.

CASE_LENGTH = 128
TEXT_LENGTH = 1024


class Hold(Base):
    """A legal hold: a camera's ``[start_us, end_us)`` kept from retention until released."""

    __tablename__ = "holds"
    __table_args__ = (Index(None, "camera_id", "start_us"),)

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    start_us: Mapped[int] = mapped_column(BigInteger)
    end_us: Mapped[int] = mapped_column(BigInteger)
    case_id: Mapped[str] = mapped_column(String(CASE_LENGTH), index=True)
    reason: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    created_by: Mapped[str] = mapped_column(String(ID_LENGTH))
    created_us: Mapped[int] = mapped_column(BigInteger)
    released_by: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    released_us: Mapped[int | None] = mapped_column(BigInteger)


class Export(Base):
    """One evidence export job; ``state`` is queued, running, done or failed."""

    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    start_us: Mapped[int] = mapped_column(BigInteger)
    end_us: Mapped[int] = mapped_column(BigInteger)
    case_id: Mapped[str] = mapped_column(String(CASE_LENGTH))
    reason: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    actor: Mapped[str] = mapped_column(String(ID_LENGTH))
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(TEXT_LENGTH))
    hold_id: Mapped[int | None] = mapped_column(BigInteger)
    package_bytes: Mapped[int | None] = mapped_column(BigInteger)
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    created_us: Mapped[int] = mapped_column(BigInteger, index=True)
    finished_us: Mapped[int | None] = mapped_column(BigInteger)


class AuditEntry(Base):
    """One row of the append-only, hash-chained audit log (nvr.evidence.chain)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at_us"),)

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    at_us: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(ID_LENGTH))
    action: Mapped[str] = mapped_column(String(32))
    camera_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    subject: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON object
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# --- S3 replication (issue 3, owned by nvr.storage) ---
class Replica(Base):
    """The replication state of one segment (docs/storage.md).

    ``state``: ``local`` (not yet in S3), ``uploading``, ``replicated`` (verified in S3,
    local copy kept), ``evicted`` (verified in S3, local copy removed). A segment with
    no row yet is ``local``. The row goes with its segment (ON DELETE CASCADE).
    """

    __tablename__ = "replicas"
    __table_args__ = (Index(None, "state", "segment_id"),)

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    state: Mapped[str] = mapped_column(String(16))
    object_key: Mapped[str] = mapped_column(String(PATH_LENGTH))
    upload_id: Mapped[str | None] = mapped_column(String(PATH_LENGTH))  # multipart
    version_id: Mapped[str | None] = mapped_column(String(PATH_LENGTH))
    checksum: Mapped[str | None] = mapped_column(
        String(64)
    )  # S3's, base64 ("-N" multipart)
    retain_until_us: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_us: Mapped[int] = mapped_column(BigInteger)
    replicated_us: Mapped[int | None] = mapped_column(BigInteger)
    evicted_us: Mapped[int | None] = mapped_column(BigInteger)


# --- end S3 replication ---
