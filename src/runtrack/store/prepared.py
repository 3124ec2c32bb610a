"""The per-run hot path on the driver's own connection.

Starting a run, finalizing it and writing its items are the statements every
tracked run pays for. Through ``Connection.execute`` each of them costs
SQLAlchemy's per-call machinery (execution context, parameter processing,
result wrapping, events), which for these small statements is twenty to thirty
times what the driver's ``cursor.execute`` costs (see ``bench/``). So these
statements, still written in SQLAlchemy Core by the store's modules,
are compiled once per dialect (:mod:`runtrack.store.compiled`) and run on
the pooled DBAPI connection, their parameters converted by SQLAlchemy's own
bind processors (the rows are the same as SQLAlchemy would write). Driver
errors are wrapped in SQLAlchemy's exception classes, so that the store
translates and retries them exactly as it does for every other statement.

:class:`RawConnection` offers the small part of ``Connection`` the hot path
uses (``execute`` of a long-lived statement, ``begin_nested``), so the same
store code runs on either. It names no database: what differs per driver
(COPY, multi-row VALUES, pipelines, ``BEGIN IMMEDIATE``, autocommit) is in
:mod:`runtrack.store.drivers`.

The fence: ``tests/ledger/test_hot_path_equivalence.py`` runs every statement
this module executes through ``Connection.execute`` too, on each database,
and compares the rows written.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import MultipleResultsFound, NoResultFound
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert, UpdateBase

from runtrack.store.compiled import Prepared, cursor_events, driver_error
from runtrack.store.drivers import driver_for

__all__ = ["Prepared", "RawConnection", "RawResult", "raw_autocommit", "raw_transaction"]

T = TypeVar("T")
#: Distinct (statement, columns) pairs kept compiled. The hot path passes only
#: module-level or cached statements, so a handful are ever used; the bound
#: only guards memory against a caller passing a statement built per call.
MAX_PREPARED = 512
_savepoints = itertools.count(1)


class RawResult:
    """What :meth:`RawConnection.execute` returns: the rows, fetched at once."""

    __slots__ = ("_rows", "inserted_primary_key", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int, inserted_key: tuple[Any, ...] | None):
        self._rows = rows
        self.rowcount = rowcount
        self.inserted_primary_key = inserted_key

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None


class RawConnection:
    """A transaction on a pooled DBAPI connection, executing long-lived Core
    statements through their :class:`Prepared` form."""

    def __init__(self, engine: Engine, cache: dict[Any, Prepared]) -> None:
        self.dialect = dialect = engine.dialect
        self._driver = driver_for(dialect)
        self._errors: type[Exception] = dialect.loaded_dbapi.Error
        self._cache = cache
        # SQLAlchemy's cursor events still see every statement (listeners get
        # no execution context, which the events document as possible), with
        # the Connection they expect. Without listeners the pooled connection
        # is taken bare: a Connection costs as much as a statement here.
        self._before, self._after = cursor_events(engine)
        self._sa: Connection | None = None
        if self._before or self._after:
            self._sa = engine.connect()
            self._conn: PoolProxiedConnection = self._sa.connection
        else:
            self._conn = _checkout(engine)
        self._cursor = self._conn.cursor()
        #: Inside :meth:`pipelined`: the statements sent, their results to fill.
        self._queued: list[tuple[Any, Prepared, ClauseElement, RawResult]] | None = None
        #: Savepoints opened inside :meth:`pipelined`, to roll back to if it fails.
        self._opened: list[str] = []
        #: PostgreSQL: the transaction's BEGIN, to go with its first statement.
        self._begin_pending = False
        #: The driver's autocommit was turned on here and must be turned off.
        self._autocommit = False

    def _prepared(self, stmt: ClauseElement, columns: tuple[str, ...], many: bool) -> Prepared:
        key = (stmt, columns, many)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= MAX_PREPARED:
                self._cache.clear()
            found = self._cache[key] = Prepared(stmt, self.dialect, columns, many)
        return found

    def execute(
        self, stmt: ClauseElement, params: Mapping[str, Any] | list[Any] | None = None
    ) -> RawResult:
        """Execute ``stmt`` with one dict of parameters, or a list of them
        (executemany; the first names the columns of an INSERT or UPDATE)."""
        many = isinstance(params, list)
        first: Mapping[str, Any] = (params[0] if isinstance(params, list) else params) or {}
        # The parameters name the columns of a plain INSERT or UPDATE (as with
        # Connection.execute); an INSERT ... SELECT names its own.
        plain = isinstance(stmt, UpdateBase) and getattr(stmt, "select", None) is None
        columns = tuple(first) if plain else ()
        prepared = self._prepared(stmt, columns, many)
        if self._begin_pending:
            if not many and self._queued is None:
                with self.pipelined():  # BEGIN and this statement: one round trip
                    result = self._queue(stmt, prepared, first, many)
                return result
            self._ensure_begun()
        if self._queued is not None:
            return self._queue(stmt, prepared, first, many)
        cursor = self._cursor
        try:
            if isinstance(params, list):
                return self._bulk(prepared, prepared.parameters(params))
            self._sent(prepared.sql, prepared.parameters([first])[0], False, cursor.execute)
            result = RawResult([], -1, None)
            self._fill(result, stmt, prepared, cursor)
            return result
        except self._errors as exc:
            raise self._wrapped(exc) from exc

    @staticmethod
    def _fill(result: RawResult, stmt: ClauseElement, prepared: Prepared, cursor: Any) -> None:
        rows = prepared.rows(cursor.fetchall()) if cursor.description else []
        key = None
        if isinstance(stmt, Insert):
            # The psycopg cursor has no lastrowid (its INSERTs return their key).
            last = (getattr(cursor, "lastrowid", None),)
            key = (rows.pop(0)[0],) if prepared.key_returned else last
        result._rows, result.rowcount, result.inserted_primary_key = rows, cursor.rowcount, key

    def _queue(
        self, stmt: ClauseElement, prepared: Prepared, params: Mapping[str, Any], many: bool
    ) -> RawResult:
        if many or self._queued is None:
            raise RuntimeError("a pipelined block sends one row per statement (no COPY)")
        cursor = self._conn.cursor()  # its own: each statement's answer lands on its cursor
        result = RawResult([], -1, None)
        self._queued.append((cursor, prepared, stmt, result))
        try:
            self._sent(prepared.sql, prepared.parameters([params])[0], False, cursor.execute)
        except self._errors as exc:
            raise self._wrapped(exc) from exc
        return result

    @contextmanager
    def pipelined(self, *, commit: bool = False) -> Iterator[None]:
        """PostgreSQL (psycopg): the block's statements go to the server
        together and are answered in one round trip when the block ends; only
        then are their results filled in, so the block may not read them.
        ``commit``: COMMIT goes with them, if the block raised nothing (a
        statement that fails leaves the transaction open, rolled back to the
        block's savepoint if it opened one). Elsewhere the block runs
        statement by statement, as usual, and commits after it."""
        if not self._driver.pipelines or self._queued is not None:
            yield
            if commit:
                self.commit()
            return
        queued: list[tuple[Any, Prepared, ClauseElement, RawResult]] = []
        self._queued = queued
        self._opened = []
        try:
            with self._driver.pipeline(self._conn.driver_connection):
                self._ensure_begun()  # queued: answered with the block's statements
                yield
                if commit:
                    self._send_sql("COMMIT")
            for cursor, prepared, stmt, result in queued:
                self._fill(result, stmt, prepared, cursor)
        except BaseException as exc:
            # A statement's error surfaces when the block ends, or at a later
            # statement of the block (already wrapped); either way the ones
            # after it never ran: undo the block's savepoint, if it opened one.
            error = self._wrapped(exc) if isinstance(exc, self._errors) else exc
            if self._opened:
                self._queued = None
                # A connection too broken for this fails the next statement.
                with contextlib.suppress(Exception):
                    self._send_sql(f"ROLLBACK TO SAVEPOINT {self._opened[0]}")
            if error is exc:
                raise
            raise error from exc
        finally:
            self._queued = None
            self._opened = []
            for cursor, *_ in queued:
                with contextlib.suppress(Exception):
                    cursor.close()

    def _sent(self, sql: str, params: Any, many: bool, send: Callable[..., object]) -> None:
        if self._before is not None:
            self._before(self._sa, self._cursor, sql, params, None, many)
        if params is None:
            send(sql)
        else:
            send(sql, params)
        if self._after is not None:
            self._after(self._sa, self._cursor, sql, params, None, many)

    def _bulk(self, prepared: Prepared, rows: list[Any]) -> RawResult:
        """Many rows of one statement, as the driver takes them best."""
        bulk = prepared.bulk
        assert bulk is not None
        cursor = self._cursor
        written = 0

        def send(_sql: str, rows: list[Any]) -> None:
            nonlocal written
            written = bulk.send(cursor, rows)

        self._sent(bulk.sql, rows, True, send)
        return RawResult([], written, None)

    def _send_sql(self, sql: str) -> None:
        try:
            self._sent(sql, None, False, self._cursor.execute)
        except self._errors as exc:
            raise self._wrapped(exc) from exc

    def _wrapped(self, exc: Exception) -> BaseException:
        """The driver's error as SQLAlchemy would raise it; a dropped
        connection is invalidated, so the pool never hands it out again."""
        lost = self.dialect.is_disconnect(exc, self._conn, self._cursor)  # type: ignore[arg-type]
        if lost:
            (self._sa or self._conn).invalidate(exc)
        return driver_error(self.dialect, exc, invalidated=lost)

    @contextmanager
    def begin_nested(self) -> Iterator[None]:
        """A savepoint: the block's statements are undone if it raises."""
        name = f"rt_sp_{next(_savepoints)}"
        self._ensure_begun()
        self._send_sql(f"SAVEPOINT {name}")
        queued = self._queued is not None
        if queued:  # a failure surfaces when the pipelined block ends: undone there
            self._opened.append(name)
        try:
            yield
        except BaseException:
            if not queued:
                self._send_sql(f"ROLLBACK TO SAVEPOINT {name}")
            raise
        self._send_sql(f"RELEASE SAVEPOINT {name}")

    def begin(self) -> None:
        """Start a write transaction, as the driver needs (see drivers)."""
        if self._driver.begin_sql is not None:
            self._send_sql(self._driver.begin_sql)
        elif self._driver.pipelines:
            # BEGIN goes with the first statement, where the driver would wait
            # for its answer first (in autocommit mode it sends none of its
            # own; COMMIT and ROLLBACK end the block as usual).
            self.set_autocommit(True)
            self._begin_pending = True

    def set_autocommit(self, on: bool) -> None:
        """Turn the driver's autocommit on, or back off."""
        try:
            self._driver.set_autocommit(self._conn.driver_connection, on)
        except self._errors as exc:
            raise self._wrapped(exc) from exc
        self._autocommit = on

    def _ensure_begun(self) -> None:
        if self._begin_pending:
            self._begin_pending = False
            self._send_sql("BEGIN")

    def commit(self) -> None:
        self._begin_pending = False  # nothing was sent: nothing to commit
        try:
            self._conn.commit()
        except self._errors as exc:
            raise self._wrapped(exc) from exc

    def rollback(self) -> None:
        # A connection too broken to roll back is discarded by the pool on close.
        with contextlib.suppress(Exception):
            self._conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cursor.close()
        if self._autocommit:
            try:
                self.set_autocommit(False)
            except Exception as exc:
                # Never back to the pool in autocommit: the store's other
                # transactions would commit statement by statement.
                if self._conn.is_valid:
                    self._conn.invalidate(exc)
        (self._sa or self._conn).close()


def _checkout(engine: Engine) -> PoolProxiedConnection:
    """A pooled connection; a failure to connect is wrapped as ``Connection``
    wraps it (a dropped server marked so), for the store to translate and retry."""
    dialect = engine.dialect
    try:
        return engine.raw_connection()
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, None, None)
        raise driver_error(dialect, exc, invalidated=lost) from exc


def raw_autocommit(
    engine: Engine, cache: dict[Any, Prepared], stmt: ClauseElement, params: Mapping[str, Any]
) -> RawResult:
    """One statement that commits by itself: a single round trip (SQLite and
    PostgreSQL only; the store asks for nothing else)."""
    raw = RawConnection(engine, cache)
    try:
        if raw._driver.needs_autocommit:  # SQLite's connections already are
            raw.set_autocommit(True)
        return raw.execute(stmt, params)
    finally:
        raw.close()  # autocommit off again


def raw_transaction(
    engine: Engine, cache: dict[Any, Prepared], work: Callable[[RawConnection], T]
) -> T:
    """Run ``work`` on a :class:`RawConnection` in one write transaction
    (SQLite: ``BEGIN IMMEDIATE``, like the store's other writes)."""
    raw = RawConnection(engine, cache)
    try:
        raw.begin()
        result = work(raw)
        raw.commit()
        return result
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
