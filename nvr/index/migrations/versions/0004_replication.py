"""Replication to S3: one row per segment with its state, object key and lock date.

Existing segments get no row: the uploader treats a segment without one as ``local``
and creates it when it queues the segment (docs/storage.md).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("segment_id", ROW_ID, autoincrement=False, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("upload_id", sa.String(1024), nullable=True),
        sa.Column("version_id", sa.String(1024), nullable=True),
        sa.Column("checksum", sa.String(64), nullable=True),
        sa.Column("retain_until_us", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("replicated_us", sa.BigInteger(), nullable=True),
        sa.Column("evicted_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("segment_id", name="pk_replicas"),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name="fk_replicas_segment_id_segments",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_replicas_state_segment_id", "replicas", ["state", "segment_id"])


def downgrade() -> None:
    op.drop_index("ix_replicas_state_segment_id", table_name="replicas")
    op.drop_table("replicas")
