"""Retention (issue 4): group settings kept in the index, and the deletion mark.

``groups.local_days`` and ``groups.priority`` join ``retention_days`` so the admin API
can change them; NULL means "not set" (no eviction, priority 0). ``segments.deleting_us``
and ``segments.deleting_reason`` mark a segment whose deletion has begun: the file and
object are removed only after the mark is committed, the row only after both
(docs/retention.md).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("local_days", sa.Float(), nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=True))
    op.execute("UPDATE groups SET priority = 10 WHERE name = 'key-area'")
    op.execute("UPDATE groups SET priority = 0 WHERE priority IS NULL")
    with op.batch_alter_table("segments") as batch:
        batch.add_column(sa.Column("deleting_us", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("deleting_reason", sa.String(64), nullable=True))
    op.create_index("ix_segments_deleting_us", "segments", ["deleting_us"])


def downgrade() -> None:
    op.drop_index("ix_segments_deleting_us", table_name="segments")
    with op.batch_alter_table("segments") as batch:
        batch.drop_column("deleting_reason")
        batch.drop_column("deleting_us")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("priority")
        batch.drop_column("local_days")
