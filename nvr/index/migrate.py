"""Bringing a catalogue database to the newest schema with the packaged Alembic revisions.

No ``alembic.ini`` is needed: the Alembic config is built here, pointing at the
``migrations`` directory inside the installed package.
"""

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from nvr.errors import StorageError
from nvr.index.engine import SQLITE_BEGIN_OPTION, is_sqlite, make_engine
from nvr.log import fields

log = logging.getLogger(__name__)

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"

# Key of the PostgreSQL advisory lock held while migrating, so two nvr processes starting
# together do not both try to create the tables. Any fixed 64-bit number unique to nvr.
_MIGRATION_LOCK_KEY = 0x6E7672_696E646578  # "nvr" "index"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged revisions, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StorageError(f"no migrations found in {SCRIPT_LOCATION}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine_or_url: Engine | str) -> None:
    """Brings the database to head; a no-op on an up-to-date database. Blocking.

    Every pending revision runs in one transaction: on failure nothing is applied.
    """
    if isinstance(engine_or_url, str):
        engine = make_engine(engine_or_url)
        try:
            _upgrade(engine)
        finally:
            engine.dispose()
        return
    _upgrade(engine_or_url)


def _upgrade(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=True)
    try:
        writer = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        with writer.begin() as connection:
            if not is_sqlite(connection):
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": _MIGRATION_LOCK_KEY},
                )
            before = current_revision(connection)
            command.upgrade(alembic_config(connection), "head")
            after = current_revision(connection)
    except (SQLAlchemyError, CommandError) as exc:
        raise StorageError(f"cannot migrate the index at {url}: {exc}") from exc
    if before != after:
        log.info("index migrated %s", fields(url=url, before=before, after=after))
