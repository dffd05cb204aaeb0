"""Evidence: segment hash chain, deletion links, holds, export jobs and the audit log.

Existing segments get their chain links computed here, per camera in id order, so the
archive audit can check the whole history from the first record on.

Revision ID: 0003
Revises: 0002
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS = "0" * 64


def upgrade() -> None:
    op.add_column("segments", sa.Column("chain_hash", sa.String(64), nullable=True))
    op.add_column("deletions", sa.Column("sha256", sa.String(64), nullable=True))
    op.add_column("deletions", sa.Column("chain_hash", sa.String(64), nullable=True))
    _create_holds()
    _create_exports()
    _create_audit_log()
    _link_existing_segments()


def _create_holds() -> None:
    op.create_table(
        "holds",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("released_by", sa.String(64), nullable=True),
        sa.Column("released_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_holds"),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name="fk_holds_camera_id_cameras"
        ),
    )
    op.create_index("ix_holds_camera_id_start_us", "holds", ["camera_id", "start_us"])
    op.create_index("ix_holds_case_id", "holds", ["case_id"])


def _create_exports() -> None:
    op.create_table(
        "exports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.String(1024), nullable=True),
        sa.Column("hold_id", sa.BigInteger(), nullable=True),
        sa.Column("package_bytes", sa.BigInteger(), nullable=True),
        sa.Column("package_sha256", sa.String(64), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exports"),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name="fk_exports_camera_id_cameras"
        ),
    )
    op.create_index("ix_exports_created_us", "exports", ["created_us"])


def _create_audit_log() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=True),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    op.create_index("ix_audit_log_at_us", "audit_log", ["at_us"])


def _link_existing_segments() -> None:
    """Computes the chain link of every existing segment (nvr.evidence.chain, copied here
    because a revision must not change when the application code does)."""
    connection = op.get_bind()
    segments = sa.table(
        "segments",
        sa.column("id", sa.BigInteger()),
        sa.column("camera_id", sa.String()),
        sa.column("sha256", sa.String()),
        sa.column("start_us", sa.BigInteger()),
        sa.column("end_us", sa.BigInteger()),
        sa.column("bytes", sa.BigInteger()),
        sa.column("chain_hash", sa.String()),
    )
    rows = connection.execute(
        sa.select(
            segments.c.id,
            segments.c.camera_id,
            segments.c.sha256,
            segments.c.start_us,
            segments.c.end_us,
            segments.c.bytes,
        ).order_by(segments.c.camera_id, segments.c.id)
    ).all()
    previous: dict[str, str] = {}
    for segment_id, camera_id, sha256, start_us, end_us, size in rows:
        text = (
            f"nvr-segment-chain/1\n{camera_id}\n{previous.get(camera_id, GENESIS)}\n"
            f"{sha256}\n{start_us}\n{end_us}\n{size}\n"
        )
        link = hashlib.sha256(text.encode("utf-8")).hexdigest()
        connection.execute(
            segments.update().where(segments.c.id == segment_id).values(chain_hash=link)
        )
        previous[camera_id] = link


def downgrade() -> None:
    for table in ("audit_log", "exports", "holds"):
        op.drop_table(table)
    op.drop_column("deletions", "chain_hash")
    op.drop_column("deletions", "sha256")
    op.drop_column("segments", "chain_hash")
