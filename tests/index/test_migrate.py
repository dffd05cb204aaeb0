"""The packaged Alembic revisions: upgrade behaviour and agreement with the models."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from nvr.errors import StorageError
from nvr.index import open_index, upgrade
from nvr.index.engine import make_engine
from nvr.index.migrate import current_revision, head_revision
from nvr.index.models import Base

from .support import CAMERAS, GROUPS, segment_event


def test_upgrade_fresh_database_reaches_head(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            assert current_revision(connection) is None

        upgrade(engine)

        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
    finally:
        engine.dispose()


def test_upgrade_up_to_date_database_is_noop_and_keeps_rows(db_url: str) -> None:
    index = open_index(db_url)
    index.sync_groups_and_cameras(GROUPS, CAMERAS)
    segment_id = index.add_segment(segment_event())
    index.close()

    upgrade(db_url)
    upgrade(db_url)
    reopened = open_index(db_url)
    try:
        assert reopened.segment_by_id(segment_id) is not None
        with reopened.engine.connect() as connection:
            assert current_revision(connection) == head_revision()
    finally:
        reopened.close()


def test_migrations_and_models_agree_no_autogenerate_diff(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()

    assert diff == []


def test_upgrade_database_from_newer_nvr_raises_storage_error(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

        with pytest.raises(StorageError, match="cannot migrate"):
            upgrade(engine)
    finally:
        engine.dispose()
