"""Fixtures: a real S3 server (SeaweedFS) shared with the storage tests' definitions,
and the index on SQLite or on a scratch PostgreSQL database (the index tests')."""

from pathlib import Path

import pytest

from tests.index.conftest import postgres_url
from tests.storage.conftest import aws_env, bucket, seaweed

from .support import sqlite_url

__all__ = ["aws_env", "bucket", "db_url", "postgres_url", "seaweed"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An index URL: SQLite in ``tmp_path``, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url
