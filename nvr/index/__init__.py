"""The catalogue of recordings: SQLAlchemy models, Alembic migrations and queries."""

from nvr.index.db import open_index
from nvr.index.migrate import upgrade
from nvr.index.repo import Index
from nvr.index.rows import DeletionRow, GapRow, RunRow, SegmentRow

__all__ = [
    "DeletionRow",
    "GapRow",
    "Index",
    "RunRow",
    "SegmentRow",
    "open_index",
    "upgrade",
]
