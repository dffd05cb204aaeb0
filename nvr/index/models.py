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
