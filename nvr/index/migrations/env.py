"""Alembic environment for the nvr catalogue; run it through ``nvr.index.migrate.upgrade``.

The caller hands over an open connection already inside a transaction, so every revision
of one upgrade commits or rolls back together (SQLite DDL included: the engine issues its
own BEGIN, see ``nvr.index.engine``).
"""

from alembic import context

from nvr.errors import StorageError
from nvr.index.models import Base


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise StorageError(
            "run the catalogue migrations through nvr.index.migrate.upgrade"
        )
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise StorageError("offline (SQL script) migrations are not supported")
run_online()
