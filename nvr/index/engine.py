"""Creating the SQLAlchemy engine for the catalogue: URL checks and SQLite connection setup.

SQLite runs in WAL mode with ``synchronous=FULL``: every commit is fsynced before it
returns. NORMAL would only risk losing the last commits on power loss, but the storage
procedures rely on "row committed" meaning durable (retention unlinks a file after its row
is gone; a lost row deletion would leave a row pointing at no file), and the write rate
(one row per segment, about one a minute per camera) makes the extra fsync cheap.
"""

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from nvr.errors import ConfigError
from nvr.log import redact_url

# How long a SQLite connection waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_S = 15.0
POSTGRES_CONNECT_TIMEOUT_S = 10

# Execution option naming the SQLite BEGIN flavour; writers use IMMEDIATE so a read-then-
# write transaction takes the write lock up front instead of failing to upgrade it later.
SQLITE_BEGIN_OPTION = "nvr_sqlite_begin"
_SQLITE_BEGIN_MODES = ("DEFERRED", "IMMEDIATE")


def parse_index_url(url: str) -> URL:
    """The URL as SQLAlchemy will use it; plain ``postgresql://`` is mapped to psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"index.url: not a database URL: {redact_url(url)}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"index.url: unsupported database {parsed.get_backend_name()!r} "
            "(use sqlite:///path or postgresql://...)"
        )
    return parsed


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    """A configured engine for ``url``; creates the parent directory of a SQLite file."""
    parsed = parse_index_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    options: dict[str, Any] = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    }
    if in_memory:
        # One shared connection, or every checkout would see a new empty database.
        options["poolclass"] = StaticPool
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Note: the sqlite3 module's own transaction handling skips BEGIN before SELECT and DDL,
    # so reads and migrations would not be atomic; turn it off and issue BEGIN ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
    if mode not in _SQLITE_BEGIN_MODES:
        raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
    connection.exec_driver_sql(f"BEGIN {mode}")
