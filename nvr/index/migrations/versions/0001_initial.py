"""Initial catalogue: groups, cameras, runs, segments, gaps, deletions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# SQLite only auto-increments an INTEGER PRIMARY KEY, never a BIGINT one.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_groups"),
    )
    op.create_table(
        "cameras",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cameras"),
        sa.ForeignKeyConstraint(
            ["group_name"], ["groups.name"], name="fk_cameras_group_name_groups"
        ),
    )
    op.create_index("ix_cameras_group_name", "cameras", ["group_name"])
    _create_runs()
    _create_segments()
    _create_gaps()
    _create_deletions()


def _create_runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("ended_us", sa.BigInteger(), nullable=True),
        sa.Column("end_reason", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name="fk_runs_camera_id_cameras"
        ),
    )
    op.create_index("ix_runs_camera_id_started_us", "runs", ["camera_id", "started_us"])


def _create_segments() -> None:
    op.create_table(
        "segments",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("media_start", sa.BigInteger(), nullable=False),
        sa.Column("media_duration", sa.BigInteger(), nullable=False),
        sa.Column("timescale", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("video_codec", sa.String(32), nullable=False),
        sa.Column("audio_codec", sa.String(32), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("keyframes", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
        sa.UniqueConstraint("path", name="uq_segments_path"),
        sa.CheckConstraint("end_us > start_us", name="ck_segments_end_after_start"),
        sa.CheckConstraint("bytes > 0", name="ck_segments_bytes_positive"),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name="fk_segments_camera_id_cameras"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_segments_run_id_runs"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_segments_camera_id_start_us", "segments", ["camera_id", "start_us"]
    )
    op.create_index("ix_segments_camera_id_end_us", "segments", ["camera_id", "end_us"])
    op.create_index("ix_segments_run_id", "segments", ["run_id"])


def _create_gaps() -> None:
    op.create_table(
        "gaps",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gaps"),
        sa.CheckConstraint("end_us > start_us", name="ck_gaps_end_after_start"),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name="fk_gaps_camera_id_cameras"
        ),
    )
    op.create_index("ix_gaps_camera_id_start_us", "gaps", ["camera_id", "start_us"])
    op.create_index("ix_gaps_camera_id_end_us", "gaps", ["camera_id", "end_us"])


def _create_deletions() -> None:
    op.create_table(
        "deletions",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("segment_id", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("deleted_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deletions"),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name="fk_deletions_camera_id_cameras"
        ),
    )
    op.create_index(
        "ix_deletions_camera_id_deleted_us", "deletions", ["camera_id", "deleted_us"]
    )


def downgrade() -> None:
    for table in ("deletions", "gaps", "segments", "runs", "cameras", "groups"):
        op.drop_table(table)
