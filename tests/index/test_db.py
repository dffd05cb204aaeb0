"""Opening the catalogue: URL handling and the SQLite connection settings."""

import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from nvr.errors import ConfigError, StorageError
from nvr.index import open_index
from nvr.index.models import Group

from .support import CAMERAS, GROUPS, segment_event


def test_open_index_sqlite_file_creates_parent_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "index.db"

    index = open_index(f"sqlite:///{path}")
    try:
        with index.engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in (
                    "journal_mode",
                    "synchronous",
                    "foreign_keys",
                    "busy_timeout",
                )
            }
    finally:
        index.close()

    assert path.is_file()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 15000,
    }


def test_open_index_sqlite_foreign_keys_are_enforced(sqlite_url: str) -> None:
    index = open_index(sqlite_url)
    try:
        with pytest.raises(IntegrityError), index.sessions() as session:
            session.execute(
                text(
                    "INSERT INTO cameras (id, group_name, created_us) VALUES ('c', 'nope', 0)"
                )
            )
            session.commit()
    finally:
        index.close()


def test_open_index_sqlite_in_memory_works_across_calls() -> None:
    index = open_index("sqlite://")
    try:
        index.sync_groups_and_cameras(GROUPS, CAMERAS)
        segment_id = index.add_segment(segment_event())
        assert index.segment_by_id(segment_id) is not None
    finally:
        index.close()


@pytest.mark.postgres
def test_open_index_plain_postgresql_url_uses_psycopg3(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")

    index = open_index(postgres_url)
    try:
        with index.sessions() as session:
            assert session.get(Group, "general") is None
        assert index.engine.dialect.driver == "psycopg"
    finally:
        index.close()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_open_index_unsupported_url_raises_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        open_index(url)


def test_open_index_unreachable_postgres_raises_without_password() -> None:
    started = time.monotonic()

    with pytest.raises(StorageError) as caught:
        open_index("postgresql://postgres:hunter2@127.0.0.1:1/nvr")

    assert "hunter2" not in str(caught.value)
    assert time.monotonic() - started < 15
