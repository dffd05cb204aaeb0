"""Opening the catalogue: engine, migrations to head, and the Index object.

Accepted URLs: ``sqlite:///relative/or/absolute/path.db`` (parent directory created),
``sqlite://`` (in memory, tests only), ``postgresql+psycopg://...``; plain
``postgresql://`` and ``postgres://`` are mapped to psycopg 3. See ``nvr.index.engine``
for the SQLite settings (WAL, synchronous=FULL, foreign keys, busy timeout).
"""

import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from nvr.errors import StorageError
from nvr.index.engine import make_engine
from nvr.index.migrate import upgrade
from nvr.index.repo import Index
from nvr.log import fields
from nvr.timeutil import wall_now_us

log = logging.getLogger(__name__)


def open_index(url: str, clock: Callable[[], int] = wall_now_us) -> Index:
    """Connects, migrates the schema to head and returns the Index. Blocking.

    Raises ConfigError for a URL nvr cannot use and StorageError when the database is
    unreachable or cannot be migrated.
    """
    engine = make_engine(url)
    shown_url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        upgrade(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StorageError(f"cannot open the index at {shown_url}: {exc}") from exc
    except StorageError:
        engine.dispose()
        raise
    log.info("index open %s", fields(url=shown_url, backend=engine.dialect.name))
    return Index(engine, clock)
