"""Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB.

The rest of the store is one SQLAlchemy Core implementation; this module holds
the few places where the databases disagree: driver choice, SQLite pragmas and
locking, "insert unless present", reading the server clock, and which driver
errors are worth retrying. How the hot path's statements go to each driver
(COPY, multi-row VALUES, pipelines, ``BEGIN IMMEDIATE``) is next door, in
:mod:`runtrack.store.drivers`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Engine,
    Float,
    Table,
    create_engine,
    event,
    extract,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InvalidatePoolError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.sql.dml import Insert

from runtrack.errors import ConfigurationError

__all__ = [
    "IMMEDIATE",
    "exact_collation",
    "insert_ignore",
    "is_retryable",
    "make_engine",
    "normalize_url",
    "now_sql",
    "seconds_between",
]

#: Execution option that makes a SQLite transaction take the write lock at
#: BEGIN. A deferred transaction that reads and then writes can fail with
#: SQLITE_BUSY without waiting (busy_timeout does not apply to lock upgrades).
IMMEDIATE = "runtrack_sqlite_immediate"
#: Seconds a pooled connection may sit unused before it is pinged at checkout.
PING_AFTER_IDLE = 1.0
_IDLE_SINCE = "runtrack_idle_since"
#: Seconds a statement waits for a row lock held by another session before it
#: fails with DatabaseBusy. Every lock the ledger takes is held for a few
#: statements, so a longer wait means the holder is stuck (a worker frozen by
#: SIGSTOP inside its heartbeat transaction): without a bound, ``reap`` and
#: ``finish_run`` on its run would wait forever.
LOCK_WAIT = 10.0
#: PostgreSQL: seconds a session may sit idle inside a transaction before the
#: server ends it, releasing its locks (the frozen worker above). The ledger
#: never waits on anything but the database inside a transaction.
IDLE_IN_TRANSACTION = 60.0

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


def make_engine(
    url: str, *, lock_wait: float = LOCK_WAIT, idle_in_transaction: float = IDLE_IN_TRANSACTION
) -> Engine:
    """An engine for ``url`` with runtrack's per-database settings: bounded
    row-lock waits (``lock_wait`` seconds, see :data:`LOCK_WAIT`)."""
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
        if not parsed.query.get("uri"):
            _create_private(parsed.database)
        # No rollback when a connection goes back to the pool: every
        # transaction ends itself (a Connection rolls back its own on close,
        # the raw path on any error), and in autocommit mode SQLite has none
        # open between them; the reset cost two pool calls per run.
        engine = create_engine(parsed, connect_args={"timeout": 30}, pool_reset_on_return=None)
        _configure_sqlite(engine)
        return engine
    if backend not in ("postgresql", "mysql", "mariadb"):
        raise ConfigurationError(
            f"unsupported database {backend!r}; "
            "runtrack supports sqlite, postgresql and mysql/mariadb"
        )
    kwargs: dict[str, Any] = {"connect_args": _lock_bounds(backend, lock_wait)}
    if backend in ("mysql", "mariadb"):
        kwargs["pool_recycle"] = 3600
    engine = create_engine(parsed, **kwargs)
    if backend == "postgresql":
        _bound_idle_in_transaction(engine, idle_in_transaction)
    _ping_after_idle(engine)
    return engine


def _lock_bounds(backend: str, lock_wait: float) -> dict[str, Any]:
    """Session settings sent with the connection itself (no extra round trip)."""
    if backend == "postgresql":
        return {"options": f"-c lock_timeout={round(lock_wait * 1000)}"}
    # InnoDB counts whole seconds, at least one.
    return {"init_command": f"SET SESSION innodb_lock_wait_timeout = {max(1, round(lock_wait))}"}


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether a driver error is a row-lock wait that ran out (see LOCK_WAIT)."""
    if not isinstance(exc, DBAPIError):
        return False
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] == 1205  # MySQL/MariaDB: lock wait timeout exceeded
    return getattr(exc.orig, "sqlstate", None) == "55P03"  # PG: lock_not_available


def _create_private(path: str) -> None:
    """Create a new SQLite file readable by its owner only (0600): it holds
    params, checkpoints and error details. SQLite creates the ``-wal`` and
    ``-shm`` files with the database file's permissions. An existing file
    keeps the permissions its owner gave it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # a missing directory or no permission: SQLite says it better
    os.close(fd)


def sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names (``None`` for any other database, and for
    a URI filename, whose options decide whether it is created)."""
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("uri"):
        return None
    return parsed.database or None


# The session's idle-in-transaction bound: ``idle`` ms, or the server's (or
# role's, or database's) own if that is tighter. Sent as a connection option,
# it would override a tighter one an operator set for partitions.
_IDLE_BOUND = (
    "SELECT set_config('idle_in_transaction_session_timeout',"
    " LEAST(NULLIF(setting::bigint, 0), %(idle)s)::text, false)"
    " FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'"
)


def _bound_idle_in_transaction(engine: Engine, idle: float) -> None:
    """Have PostgreSQL end a session idle inside a transaction for ``idle``
    seconds (a frozen or cut-off worker releases its row locks), unless the
    server is configured tighter: one statement when a connection is made."""
    bound = {"idle": round(idle * 1000)}

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(_IDLE_BOUND, bound)
        dbapi_connection.commit()


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


def exact_collation(dialect: Dialect) -> str:
    """The MySQL/MariaDB collation that compares strings as SQLite and
    PostgreSQL do: byte for byte, so that keys differing only by case, accent
    or trailing space stay distinct. The server default (utf8mb4_general_ci)
    folds all three, and utf8mb4_bin still ignores trailing spaces (PAD
    SPACE); MariaDB's utf8mb4_nopad_bin and MySQL 8's utf8mb4_0900_bin do not.
    MySQL before 8.0.17 has no NO PAD binary collation: there trailing spaces
    are still ignored."""
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    if (dialect.server_version_info or ()) >= (8, 0, 17):
        return "utf8mb4_0900_bin"
    return "utf8mb4_bin"


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> Insert:
    """``INSERT`` that does nothing when the primary key already exists."""
    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(table).values(values).on_conflict_do_nothing()
    if name == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing()
    pk = table.primary_key.columns.values()[0]
    stmt = mysql.insert(table).values(values)
    # Set the key to itself, not to the new value: a key the collation calls
    # equal but spelled differently would otherwise be rewritten in place.
    return stmt.on_duplicate_key_update({pk.name: pk})


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


def seconds_between(dialect: str, earlier: Any, later: Any) -> Any:
    """SQL for the seconds from timestamp ``earlier`` to ``later`` (a float,
    to about 0.1 ms on SQLite, whose Julian day numbers are doubles)."""
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    if dialect == "postgresql":
        return extract("epoch", later - earlier)
    micro = func.timestampdiff(literal_column("MICROSECOND"), earlier, later, type_=Float())
    return micro / 1_000_000.0


def polls_for_locks(dialect: str) -> bool:
    """Whether a writer waiting for the database lock polls for it instead of
    queueing (SQLite's busy handler). There a loop of back-to-back write
    transactions can starve every other writer, so long maintenance loops
    pause between their transactions."""
    return dialect == "sqlite"


# MySQL/MariaDB: deadlock, server gone / lost connection (a lock wait timeout is
# DatabaseBusy, see is_lock_timeout);
# and "SAVEPOINT does not exist", which is how a deadlock inside a savepoint
# surfaces: the server rolled the whole transaction back, savepoints included.
_MYSQL_RETRY = {1213, 1305, 2006, 2013}
# PostgreSQL SQLSTATEs: serialization failure, deadlock, connection failures.
_PG_RETRY_PREFIXES = ("40001", "40P01", "08", "57P")


def is_retryable(exc: BaseException) -> bool:
    """Whether a driver error is transient: retrying the whole transaction may
    succeed (lock contention, deadlock, a dropped connection)."""
    if not isinstance(exc, DBAPIError) or is_lock_timeout(exc):
        return False  # a lock wait already waited its bound: DatabaseBusy
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


def missing_table(exc: BaseException) -> str | None:
    """The driver's words when a statement met a table that does not exist
    (an unmigrated database), else ``None``."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and args[0] == 1146:  # MySQL/MariaDB: table doesn't exist
        return str(args[1]) if len(args) > 1 else str(orig)
    if "42P01" in (getattr(orig, "sqlstate", None), getattr(orig, "pgcode", None)):  # PG
        return str(orig).splitlines()[0]
    message = str(orig)
    return message if message.startswith("no such table") else None
