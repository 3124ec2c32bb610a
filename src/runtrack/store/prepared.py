"""The per-run hot path on the driver's own connection.

Starting a run, finalizing it and writing its items are the statements every
tracked run pays for. Through ``Connection.execute`` each of them costs
SQLAlchemy's per-call machinery (execution context, parameter processing,
result wrapping, events), which for these small statements is twenty to thirty
times what the driver's ``cursor.execute`` costs (see ``bench/``). So these
statements, still written in SQLAlchemy Core in :mod:`runtrack.store.sql`,
are compiled once per dialect and run on the pooled DBAPI connection, their
parameters converted by SQLAlchemy's own bind processors (the rows are the
same as SQLAlchemy would write). Driver errors are wrapped in SQLAlchemy's
exception classes, so that the store translates and retries them exactly as
it does for every other statement.

:class:`RawConnection` offers the small part of ``Connection`` the hot path
uses (``execute`` of a long-lived statement, ``begin_nested``), so the same
store code runs on either.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.sql.selectable import Select

__all__ = ["Prepared", "RawConnection", "RawResult", "raw_autocommit", "raw_transaction"]

T = TypeVar("T")
_REQUIRED = object()
#: Distinct (statement, columns) pairs kept compiled. The hot path passes only
#: module-level or cached statements, so a handful are ever used; the bound
#: only guards memory against a caller passing a statement built per call.
MAX_PREPARED = 512
_savepoints = itertools.count(1)


class Prepared:
    """One statement compiled for one dialect: its SQL, how to turn a dict of
    parameters into the driver's parameters, and how to read its rows."""

    __slots__ = (
        "_bind",
        "_results",
        "_row",
        "copy_sql",
        "key_returned",
        "multi_sql",
        "rows_per_statement",
        "sql",
    )

    def __init__(
        self, stmt: ClauseElement, dialect: Dialect, columns: Sequence[str], many: bool = False
    ) -> None:
        # An INSERT without a RETURNING of its own reports its new key through
        # one where the database has it (the psycopg cursor has no lastrowid).
        # (Read before any copy is made: a copy keeps the original's columns.)
        own = list(stmt.exported_columns) if isinstance(stmt, UpdateBase) else []
        returning_key = (
            isinstance(stmt, Insert)
            and _has_new_key(stmt)  # an upsert has none to report
            and not own
            and not many
            and dialect.insert_returning
        )
        returned: list[Any] = list(stmt.selected_columns) if isinstance(stmt, Select) else own
        if returning_key:
            assert isinstance(stmt, Insert)
            returned = list(stmt.table.primary_key)
            stmt = stmt.returning(*returned)
        #: Whether the first returned column is the inserted primary key.
        self.key_returned = returning_key
        compiled = _compile(stmt, dialect, columns)
        self.sql = compiled.string
        names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
        defaults = compiled.params
        specs: list[tuple[str, Callable[[Any], Any] | None, Any]] = []
        # One processor per type: the columns of one type share it, so that the
        # binder can convert an object they share (a run's timestamp) once.
        processors: dict[int, tuple[Any, Callable[[Any], Any] | None]] = {}
        for name in names:
            bind = compiled.binds[name]
            impl = bind.type.dialect_impl(dialect)
            if id(impl) not in processors:
                processors[id(impl)] = (impl, impl.bind_processor(dialect))
            processor = processors[id(impl)][1]
            specs.append((name, processor, _default(stmt, name, bind.required, defaults)))
        #: PostgreSQL: many rows of a plain INSERT go by COPY, several times
        #: faster than executemany (the rows are the same).
        self.copy_sql = _copy_sql(stmt, dialect, names) if many else None
        #: SQLite: many rows of a plain INSERT go this many per statement (its
        #: VALUES repeated), which costs sqlite3 a third less than a row each.
        self.multi_sql, self.rows_per_statement = (
            _multi_values(stmt, dialect, self.sql, len(names)) if many else (None, 0)
        )
        if self.copy_sql is not None:
            specs = [(name, _copy_text(p, dialect) if p else p, d) for name, p, d in specs]
        self._bind = _binder(specs, compiled.positional or self.copy_sql is not None)
        self._results = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in returned
        ]
        self._row = _row_type([c.key for c in returned])

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The driver's parameters for each row of ``rows``."""
        return self._bind(rows)

    def rows(self, fetched: Sequence[Sequence[Any]]) -> list[Any]:
        results = self._results
        make = self._row._make
        if not any(results):
            return [make(row) for row in fetched]
        return [
            make(p(v) if p else v for p, v in zip(results, row, strict=True)) for row in fetched
        ]


def _has_new_key(stmt: Insert) -> bool:
    """Whether an INSERT makes a key the database picks (an identity column)."""
    return isinstance(stmt.table, Table) and stmt.table.autoincrement_column is not None


def _row_type(names: list[str]) -> Any:
    """A tuple with attribute access by column name, like SQLAlchemy's Row."""
    base: Any = namedtuple("Row", names, rename=True)  # type: ignore[misc]
    return type("Row", (base,), {"__slots__": (), "_mapping": property(base._asdict)})


def _default(stmt: ClauseElement, name: str, required: bool, defaults: Mapping[str, Any]) -> Any:
    """What a parameter the caller left out takes: a column's scalar default
    for an INSERT, a literal embedded in the statement, or nothing (required)."""
    if isinstance(stmt, Insert) and name in stmt.table.c:
        default = stmt.table.c[name].default
        if default is not None and default.is_scalar:
            return default.arg  # type: ignore[attr-defined]
    if required:
        return _REQUIRED
    return defaults.get(name)


def _binder(
    specs: Sequence[tuple[str, Callable[[Any], Any] | None, Any]], positional: bool
) -> Callable[[Sequence[Mapping[str, Any]]], list[Any]]:
    """A function turning rows of parameters into the driver's parameters.

    One row (a start, a finalization) is bound row-wise; many rows (an item
    batch) column by column, which keeps the per-value work in list
    comprehensions, and a processor runs once per distinct object in a row
    (an item batch shares its timestamp and its ``None`` data)."""
    names = [name for name, _, _ in specs]
    defaults = [(name, default) for name, _, default in specs]
    # The positions each processor converts, in order.
    processed: dict[Callable[[Any], Any], list[int]] = {}
    for i, (_, processor, _) in enumerate(specs):
        if processor is not None:
            processed.setdefault(processor, []).append(i)

    def one(params: Mapping[str, Any]) -> Any:
        values = [params.get(name, default) for name, default in defaults]
        if _REQUIRED in values:
            raise _missing(names[values.index(_REQUIRED)])
        for processor, positions in processed.items():
            last_in: Any = _REQUIRED
            last_out = None
            for i in positions:
                value = values[i]
                if value is not last_in:
                    last_in, last_out = value, processor(value)
                values[i] = last_out
        return values if positional else dict(zip(names, values, strict=True))

    def many(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        columns = []
        for name, processor, default in specs:
            try:
                values = list(map(itemgetter(name), rows))  # every row names it: C speed
            except KeyError:
                values = [params.get(name, default) for params in rows]
                if _REQUIRED in values:
                    raise _missing(name) from None
            columns.append(values if processor is None else _each(processor, values))
        bound = list(zip(*columns, strict=True))
        return bound if positional else [dict(zip(names, row, strict=True)) for row in bound]

    def bind(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        return [one(rows[0])] if len(rows) == 1 else many(rows)

    return bind


def _missing(name: str) -> KeyError:
    return KeyError(f"a value is required for bind parameter {name!r}")


def _each(processor: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """``processor`` applied to ``values``, once per run of the same object."""
    if len(set(map(id, values))) == 1:  # one object throughout: a batch's timestamp
        return [processor(values[0])] * len(values)
    out = []
    last_in: Any = _REQUIRED
    last_out = None
    for value in values:
        if value is not last_in:
            last_in, last_out = value, processor(value)
        out.append(last_out)
    return out


def _copy_sql(stmt: ClauseElement, dialect: Dialect, names: list[str]) -> str | None:
    if dialect.name != "postgresql" or dialect.driver != "psycopg" or type(stmt) is not Insert:
        return None
    quote = dialect.identifier_preparer.quote
    table = dialect.identifier_preparer.format_table(stmt.table)
    return f"COPY {table} ({', '.join(quote(name) for name in names)}) FROM STDIN"


#: The most parameters in one SQLite statement on every version still in use.
SQLITE_MAX_PARAMETERS = 999


def _multi_values(
    stmt: ClauseElement, dialect: Dialect, sql: str, width: int
) -> tuple[str | None, int]:
    """A plain SQLite INSERT with its VALUES group repeated, and how many rows
    it takes (None: not such an INSERT)."""
    if dialect.name != "sqlite" or type(stmt) is not Insert or width == 0:
        return None, 0
    head, found, group = sql.rpartition(" VALUES ")
    if (
        not found
        or not (group.startswith("(") and group.endswith(")"))
        or group.count("?") != width
    ):
        return None, 0
    per = max(1, SQLITE_MAX_PARAMETERS // width)
    return f"{head} VALUES {', '.join([group] * per)}", per


def _copy_text(processor: Callable[[Any], Any], dialect: Dialect) -> Callable[[Any], Any]:
    """``processor``, with a JSON value serialized to its text: COPY sends
    text, and psycopg would serialize its ``Json`` wrapper again for every row,
    where the binder serializes each distinct object once."""
    from psycopg.types.json import Json, Jsonb

    fallback = getattr(dialect, "_json_serializer", None) or json.dumps

    def process(value: Any) -> Any:
        value = processor(value)
        if isinstance(value, Json | Jsonb):
            return (value.dumps or fallback)(value.obj)
        return value

    return process


def _compile(stmt: ClauseElement, dialect: Dialect, columns: Sequence[str]) -> SQLCompiler:
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns) or None)
    return cast(SQLCompiler, compiled)


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
        self._errors: type[Exception] = dialect.loaded_dbapi.Error
        self._cache = cache
        # SQLAlchemy's cursor events still see every statement (listeners get
        # no execution context, which the events document as possible), with
        # the Connection they expect. Without listeners the pooled connection
        # is taken bare: a Connection costs as much as a statement here.
        dispatch = engine.dispatch
        self._before = dispatch.before_cursor_execute or None
        self._after = dispatch.after_cursor_execute or None
        self._sa: Connection | None = None
        if self._before or self._after:
            self._sa = engine.connect()
            self._conn: PoolProxiedConnection = self._sa.connection
        else:
            self._conn = _checkout(engine)
        self._cursor = self._conn.cursor()
        #: Inside :meth:`pipelined`: the statements sent, their results to fill.
        self._queued: list[tuple[Any, Prepared, ClauseElement, RawResult]] | None = None
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
        self, stmt: ClauseElement, params: Mapping[str, Any] | list[dict[str, Any]] | None = None
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
                if prepared.copy_sql is not None:
                    return self._copy(prepared.copy_sql, prepared.parameters(params))
                if prepared.multi_sql is not None:
                    return self._multi(prepared, prepared.parameters(params))
                self._sent(prepared.sql, prepared.parameters(params), True, cursor.executemany)
                return RawResult([], cursor.rowcount, None)
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
    def pipelined(self) -> Iterator[None]:
        """PostgreSQL (psycopg): the block's statements go to the server
        together and are answered in one round trip when the block ends; only
        then are their results filled in, so the block may not read them.
        Elsewhere the block runs statement by statement, as usual."""
        if not self._can_pipeline() or self._queued is not None:
            yield
            return
        queued: list[tuple[Any, Prepared, ClauseElement, RawResult]] = []
        self._queued = queued
        driver: Any = self._conn.driver_connection
        try:
            with driver.pipeline():
                self._ensure_begun()  # queued: answered with the block's statements
                yield
            for cursor, prepared, stmt, result in queued:
                self._fill(result, stmt, prepared, cursor)
        except self._errors as exc:
            raise self._wrapped(exc) from exc
        finally:
            self._queued = None
            for cursor, *_ in queued:
                with contextlib.suppress(Exception):
                    cursor.close()

    def _can_pipeline(self) -> bool:
        return self.dialect.driver == "psycopg" and _pipeline_supported()

    def _sent(self, sql: str, params: Any, many: bool, send: Callable[..., object]) -> None:
        if self._before is not None:
            self._before(self._sa, self._cursor, sql, params, None, many)
        if params is None:
            send(sql)
        else:
            send(sql, params)
        if self._after is not None:
            self._after(self._sa, self._cursor, sql, params, None, many)

    def _copy(self, sql: str, rows: list[Any]) -> RawResult:
        cursor: Any = self._cursor  # psycopg's

        def send(sql: str, rows: list[Any]) -> None:
            with cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)

        self._sent(sql, rows, True, send)
        return RawResult([], len(rows), None)

    def _multi(self, prepared: Prepared, rows: list[Any]) -> RawResult:
        """Whole groups of rows by the multi-row statement, the rest one by one
        (a statement per remainder size would crowd the driver's cache). The
        cursor events see one executemany of the plain statement."""
        cursor = self._cursor
        per = prepared.rows_per_statement
        whole = len(rows) - len(rows) % per

        def send(sql: str, rows: list[Any]) -> None:
            if whole:
                groups = [
                    list(chain.from_iterable(rows[i : i + per])) for i in range(0, whole, per)
                ]
                cursor.executemany(prepared.multi_sql, groups)
            if whole < len(rows):
                cursor.executemany(sql, rows[whole:])

        self._sent(prepared.sql, rows, True, send)
        return RawResult([], len(rows), None)

    def _driver(self, sql: str) -> None:
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
        return DBAPIError.instance(
            None, None, exc, self._errors, connection_invalidated=lost, dialect=self.dialect
        )

    @contextmanager
    def begin_nested(self) -> Iterator[None]:
        """A savepoint: the block's statements are undone if it raises."""
        name = f"rt_sp_{next(_savepoints)}"
        self._ensure_begun()
        self._driver(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._driver(f"ROLLBACK TO SAVEPOINT {name}")
            raise
        self._driver(f"RELEASE SAVEPOINT {name}")

    def begin(self) -> None:
        # SQLite (in autocommit mode, see dialects): take the write lock now.
        # PostgreSQL (psycopg with pipelines): BEGIN goes with the first
        # statement, where psycopg would wait for its answer first (in
        # autocommit mode psycopg sends none of its own; COMMIT and ROLLBACK
        # end the block as usual). The other drivers begin with the first
        # statement themselves.
        if self.dialect.name == "sqlite":
            self._driver("BEGIN IMMEDIATE")
        elif self._can_pipeline():
            self.set_autocommit(True)
            self._begin_pending = True

    def set_autocommit(self, on: bool) -> None:
        """Turn the (psycopg) driver's autocommit on, or back off."""
        driver: Any = self._conn.driver_connection
        try:
            driver.autocommit = on
        except self._errors as exc:
            raise self._wrapped(exc) from exc
        self._autocommit = on

    def _ensure_begun(self) -> None:
        if self._begin_pending:
            self._begin_pending = False
            self._driver("BEGIN")

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
        raise DBAPIError.instance(
            None,
            None,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc


@functools.cache
def _pipeline_supported() -> bool:
    import psycopg  # only asked on a psycopg connection: installed

    return bool(psycopg.Pipeline.is_supported())


def raw_autocommit(
    engine: Engine, cache: dict[Any, Prepared], stmt: ClauseElement, params: Mapping[str, Any]
) -> RawResult:
    """One statement that commits by itself: a single round trip (SQLite and
    PostgreSQL only; the store asks for nothing else)."""
    raw = RawConnection(engine, cache)
    try:
        if raw.dialect.name == "postgresql":
            raw.set_autocommit(True)  # psycopg; SQLite's connections already are
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
