"""Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB.

The rest of the store is one SQLAlchemy Core implementation; this module holds
the few places where the databases disagree: driver choice, SQLite pragmas and
locking, "insert unless present", reading the server clock, and which driver
errors are worth retrying.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InvalidatePoolError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.sql.dml import Insert

from runtrack.errors import ConfigurationError

__all__ = ["IMMEDIATE", "insert_ignore", "is_retryable", "make_engine", "normalize_url", "now_sql"]

#: Execution option that makes a SQLite transaction take the write lock at
#: BEGIN. A deferred transaction that reads and then writes can fail with
#: SQLITE_BUSY without waiting (busy_timeout does not apply to lock upgrades).
IMMEDIATE = "runtrack_sqlite_immediate"
#: Seconds a pooled connection may sit unused before it is pinged at checkout.
PING_AFTER_IDLE = 1.0
_IDLE_SINCE = "runtrack_idle_since"

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


def normalize_url(url: str) -> str:
    """Pick the drivers runtrack ships extras for when a URL names none."""
    if not isinstance(url, str):
        raise ConfigurationError(f"database URL must be a string, got {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(
            f"database URL {url!r} has no scheme; use sqlite:///path.db, "
            "postgresql://user@host/db or mysql://user@host/db"
        )
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with runtrack's per-database settings."""
    try:
        parsed = make_url(normalize_url(url))
        parsed.get_dialect()  # an unknown driver fails here, not at the first query
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigurationError(f"database URL is not usable: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigurationError(
                "an in-memory SQLite ledger cannot be shared by the heartbeat thread; "
                "use a file: sqlite:///runtrack.db"
            )
        engine = create_engine(parsed, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    if backend not in ("postgresql", "mysql", "mariadb"):
        raise ConfigurationError(
            f"unsupported database {backend!r}; "
            "runtrack supports sqlite, postgresql and mysql/mariadb"
        )
    kwargs: dict[str, Any] = {}
    if backend in ("mysql", "mariadb"):
        kwargs["pool_recycle"] = 3600
    engine = create_engine(parsed, **kwargs)
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """``pool_pre_ping``, for connections that sat in the pool a while.

    A pooled connection is pinged before it is handed out only if it has been
    idle for :data:`PING_AFTER_IDLE` seconds: a server that went away while it
    sat there is found and the pool refilled, as with ``pool_pre_ping``, but
    back-to-back runs do not pay a round trip per checkout (two per run). A
    connection that died in the last second fails its first statement as a
    dropped connection, which the store retries on a fresh one.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return  # a new connection, or one in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            # Like a failed pre-ping: every older pooled connection is suspect.
            raise InvalidatePoolError(f"ping failed: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own
        # transaction handling would defer it and break BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> Insert:
    """``INSERT`` that does nothing when the primary key already exists."""
    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(table).values(values).on_conflict_do_nothing()
    if name == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing()
    pk = table.primary_key.columns.values()[0].name
    stmt = mysql.insert(table).values(values)
    return stmt.on_duplicate_key_update({pk: stmt.inserted[pk]})


def upsert(conn: Connection, table: Table, values: dict[str, Any], update: list[str]) -> Insert:
    """``INSERT`` that overwrites ``update`` columns when the key exists."""
    name = conn.dialect.name
    pk = [c.name for c in table.primary_key.columns]
    if name in ("sqlite", "postgresql"):
        module: Any = sqlite if name == "sqlite" else postgresql
        stmt = module.insert(table).values(values)
        return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=pk, set_={c: stmt.excluded[c] for c in update}
        )
    my = mysql.insert(table).values(values)
    return my.on_duplicate_key_update({c: my.inserted[c] for c in update})


def upsert_add(dialect: str, table: Table, add: Sequence[str]) -> Insert:
    """``INSERT`` (values given at execution), or add the values of the ``add``
    columns to the existing row's: one statement, so concurrent callers never
    lose an increment."""
    pk = [c.name for c in table.primary_key.columns]
    if dialect in ("sqlite", "postgresql"):
        module: Any = sqlite if dialect == "sqlite" else postgresql
        stmt = module.insert(table)
        return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=pk, set_={c: table.c[c] + stmt.excluded[c] for c in add}
        )
    my = mysql.insert(table)
    return my.on_duplicate_key_update({c: table.c[c] + my.inserted[c] for c in add})


def now_sql(conn: Connection) -> datetime:
    """The database server's current UTC time, to the microsecond where it can."""
    name = conn.dialect.name
    if name == "sqlite":
        value = conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
        return datetime.fromisoformat(value)
    if name == "postgresql":
        query = "SELECT clock_timestamp() AT TIME ZONE 'UTC'"
    else:
        query = "SELECT UTC_TIMESTAMP(6)"
    result: datetime = conn.execute(text(query)).scalar_one()
    return result


def polls_for_locks(dialect: str) -> bool:
    """Whether a writer waiting for the database lock polls for it instead of
    queueing (SQLite's busy handler). There a loop of back-to-back write
    transactions can starve every other writer, so long maintenance loops
    pause between their transactions."""
    return dialect == "sqlite"


# MySQL/MariaDB: deadlock, lock wait timeout, server gone / lost connection;
# and "SAVEPOINT does not exist", which is how a deadlock inside a savepoint
# surfaces: the server rolled the whole transaction back, savepoints included.
_MYSQL_RETRY = {1205, 1213, 1305, 2006, 2013}
# PostgreSQL SQLSTATEs: serialization failure, deadlock, connection failures.
_PG_RETRY_PREFIXES = ("40001", "40P01", "08", "57P")


def is_retryable(exc: BaseException) -> bool:
    """Whether a driver error is transient: retrying the whole transaction may
    succeed (lock contention, deadlock, a dropped connection)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        # MySQL's error number first: PyMySQL errors carry a SQLSTATE too, and
        # theirs (HY000 for a lock wait timeout) mean nothing to the PG table.
        return args[0] in _MYSQL_RETRY
    code = getattr(orig, "sqlstate", None)
    if isinstance(code, str):
        return code.startswith(_PG_RETRY_PREFIXES)
    if isinstance(exc, OperationalError):
        message = str(orig).lower()
        return "locked" in message or "busy" in message or "unable to open" in message
    return False
