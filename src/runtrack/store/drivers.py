"""How the hot path's statements reach each driver, where the drivers differ.

:mod:`runtrack.store.prepared` runs long-lived statements on the pooled DB-API
connection and names no database; what it does differently per database is
here, next to :mod:`runtrack.store.dialects` (which holds the differences of
the statements themselves):

- SQLite: a write transaction takes the write lock at ``BEGIN IMMEDIATE``
  (like the store's other writes), and many rows of a plain INSERT go by one
  statement with its VALUES group repeated.
- PostgreSQL (psycopg): many rows of a plain INSERT go by ``COPY``; a
  transaction's statements may be pipelined (sent together, answered in one
  round trip), its BEGIN deferred to go with the first of them; a statement
  that commits by itself needs the driver's autocommit.
- MySQL/MariaDB (PyMySQL) and any other driver: statements as they are,
  ``executemany`` for many rows, the driver begins the transaction itself.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager, nullcontext
from itertools import chain
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert

__all__ = [
    "SQLITE_MAX_PARAMETERS",
    "Bulk",
    "Copy",
    "Driver",
    "MultiValues",
    "PostgresDriver",
    "PsycopgDriver",
    "SQLiteDriver",
    "driver_for",
]

#: The most parameters in one SQLite statement on every version still in use.
SQLITE_MAX_PARAMETERS = 999


class Bulk:
    """How many rows of one plain INSERT go to the driver: ``executemany``.

    ``sql`` is what the cursor events are told was sent (one executemany of
    it); :meth:`send` sends the rows, bound as sequences if ``positional``."""

    positional = False

    def __init__(self, sql: str) -> None:
        self.sql = sql

    def send(self, cursor: Any, rows: list[Any]) -> int:
        """Send ``rows`` on the DB-API ``cursor``; the row count to report."""
        cursor.executemany(self.sql, rows)
        return int(cursor.rowcount)


class Copy(Bulk):
    """PostgreSQL (psycopg): ``COPY ... FROM STDIN``, several times faster
    than executemany for the same rows. psycopg adapts each value as it
    would for an INSERT (a JSON value by the dumper SQLAlchemy set up)."""

    positional = True

    def send(self, cursor: Any, rows: list[Any]) -> int:
        with cursor.copy(self.sql) as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)


class MultiValues(Bulk):
    """SQLite: the INSERT's VALUES group repeated ``per`` times, which costs
    sqlite3 a third less than a statement per row. Whole groups go by the
    multi-row statement, the rest one by one (a statement per remainder size
    would crowd the driver's statement cache)."""

    positional = True

    def __init__(self, sql: str, multi_sql: str, per: int) -> None:
        super().__init__(sql)
        self.multi_sql = multi_sql
        self.per = per

    def send(self, cursor: Any, rows: list[Any]) -> int:
        per = self.per
        whole = len(rows) - len(rows) % per
        if whole:
            groups = [list(chain.from_iterable(rows[i : i + per])) for i in range(0, whole, per)]
            cursor.executemany(self.multi_sql, groups)
        if whole < len(rows):
            cursor.executemany(self.sql, rows[whole:])
        return len(rows)


class Driver:
    """What the hot path does on a driver that needs nothing special."""

    #: SQL that starts a write transaction (None: the driver begins by itself).
    begin_sql: str | None = None
    #: Whether a statement commits by itself only with the driver's autocommit on.
    needs_autocommit = False

    @property
    def pipelines(self) -> bool:
        """Whether a transaction's statements can go in one round trip."""
        return False

    def pipeline(self, connection: Any) -> AbstractContextManager[Any]:
        """A block whose statements the driver sends together (``connection``
        is the driver's own)."""
        return nullcontext()

    def set_autocommit(self, connection: Any, on: bool) -> None:
        """Turn the driver's autocommit on or off (asked only where
        :attr:`needs_autocommit` or :attr:`pipelines` says so)."""
        raise NotImplementedError(f"{type(self).__name__} keeps the driver's autocommit off")

    def bulk(self, stmt: ClauseElement, dialect: Dialect, sql: str, names: list[str]) -> Bulk:
        """How many rows of ``stmt`` (compiled to ``sql``, binding ``names``) go."""
        return Bulk(sql)


class SQLiteDriver(Driver):
    """sqlite3: ``BEGIN IMMEDIATE``, and multi-row VALUES for many rows."""

    # The store's connections are in autocommit mode (see dialects): the
    # write lock is taken at BEGIN, so that a transaction that reads first
    # never fails to upgrade its lock.
    begin_sql = "BEGIN IMMEDIATE"

    def bulk(self, stmt: ClauseElement, dialect: Dialect, sql: str, names: list[str]) -> Bulk:
        width = len(names)
        head, found, group = sql.rpartition(" VALUES ")
        if (
            type(stmt) is not Insert
            or not found
            or not width
            or not (group.startswith("(") and group.endswith(")"))
            or group.count("?") != width
        ):
            return Bulk(sql)
        per = max(1, SQLITE_MAX_PARAMETERS // width)
        return MultiValues(sql, f"{head} VALUES {', '.join([group] * per)}", per)


class PostgresDriver(Driver):
    """Any PostgreSQL driver: autocommit for a statement that commits alone."""

    needs_autocommit = True

    def set_autocommit(self, connection: Any, on: bool) -> None:
        connection.autocommit = on  # psycopg's, psycopg2's and pg8000's attribute


class PsycopgDriver(PostgresDriver):
    """psycopg 3: COPY for many rows, pipelines where libpq has them."""

    @property
    def pipelines(self) -> bool:
        return _pipeline_supported()

    def pipeline(self, connection: Any) -> AbstractContextManager[Any]:
        return connection.pipeline()  # type: ignore[no-any-return]

    def bulk(self, stmt: ClauseElement, dialect: Dialect, sql: str, names: list[str]) -> Bulk:
        if type(stmt) is not Insert:
            return Bulk(sql)
        quote = dialect.identifier_preparer.quote
        table = dialect.identifier_preparer.format_table(stmt.table)
        return Copy(f"COPY {table} ({', '.join(quote(name) for name in names)}) FROM STDIN")


_PLAIN, _SQLITE, _POSTGRES, _PSYCOPG = Driver(), SQLiteDriver(), PostgresDriver(), PsycopgDriver()


def driver_for(dialect: Dialect) -> Driver:
    """The hot path's ways on ``dialect``'s driver."""
    if dialect.name == "sqlite":
        return _SQLITE
    if dialect.name == "postgresql":
        return _PSYCOPG if dialect.driver == "psycopg" else _POSTGRES
    return _PLAIN


@functools.cache
def _pipeline_supported() -> bool:
    import psycopg  # only asked on a psycopg connection: installed

    return bool(psycopg.Pipeline.is_supported())
