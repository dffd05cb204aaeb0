"""Fixtures for the catalogue tests: a real SQLite file and a real PostgreSQL database.

Each PostgreSQL test gets its own freshly created database (uniquely named), dropped
afterwards, so parallel runs never see each other's rows.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from nvr.index import Index, open_index

from .support import CAMERAS, CLOCK_US, GROUPS

POSTGRES_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/{name}"


def _postgres_admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(POSTGRES_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is unreachable: {exc}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"nvr_test_{uuid.uuid4().hex[:16]}"
    with _postgres_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.format(name=name)
    finally:
        with _postgres_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    # A directory that does not exist yet: open_index must create it.
    return f"sqlite:///{tmp_path}/var/index.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def index(db_url: str) -> Iterator[Index]:
    opened = open_index(db_url, clock=lambda: CLOCK_US)
    opened.sync_groups_and_cameras(GROUPS, CAMERAS)
    try:
        yield opened
    finally:
        opened.close()
