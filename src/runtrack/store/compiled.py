"""Statements compiled once for the hot path: SQL, parameters and rows.

:class:`Prepared` turns a long-lived SQLAlchemy Core statement into what the
driver's cursor takes (its SQL, and a function from a dict of parameters to
the driver's parameters, converted by SQLAlchemy's own bind processors) and
reads its rows with SQLAlchemy's result processors, so that the hot path
(:mod:`runtrack.store.prepared`) writes and reads what ``Connection.execute``
would, at a fraction of its cost per call.

This is the one module of runtrack that reaches below SQLAlchemy's public
execution API. It relies on:

- the compiled statement's ``string``, ``positional``, ``positiontup``
  (the bind names in positional order), ``binds`` and ``params``
  (attributes of ``SQLCompiler``, documented but not a stable contract);
- ``engine.dispatch`` to find the cursor event listeners (no public API
  lists them);
- ``DBAPIError.instance`` to wrap a driver error as ``Connection`` does.

``tests/ledger/test_hot_path_equivalence.py`` runs every hot statement both
ways on each database and fails if a SQLAlchemy release changes what these
mean; ``pyproject.toml`` bounds SQLAlchemy to the minors it was run on.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Engine, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.sql.selectable import Select

from runtrack.store.drivers import driver_for

__all__ = ["Prepared", "cursor_events", "driver_error"]

_REQUIRED = object()


class Prepared:
    """One statement compiled for one dialect: its SQL, how to turn a dict of
    parameters into the driver's parameters, and how to read its rows."""

    __slots__ = (
        "_bind",
        "_results",
        "_row",
        "bulk",
        "key_returned",
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
        #: How many rows at once go (COPY, multi-row VALUES, executemany).
        self.bulk = driver_for(dialect).bulk(stmt, dialect, self.sql, names) if many else None
        positional = compiled.positional or (self.bulk is not None and self.bulk.positional)
        self._bind = _binder(specs, positional)
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
    defaults = [default for _, _, default in specs]
    # The positions each processor converts, in order.
    processed: dict[Callable[[Any], Any], list[int]] = {}
    for i, (_, processor, _) in enumerate(specs):
        if processor is not None:
            processed.setdefault(processor, []).append(i)

    def one(params: Mapping[str, Any]) -> Any:
        # map() calls params.get(name, default) pair by pair in C: a start or
        # a finalization binds a few dozen values, no bytecode for each.
        values = list(map(params.get, names, defaults))
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


def _compile(stmt: ClauseElement, dialect: Dialect, columns: Sequence[str]) -> SQLCompiler:
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns) or None)
    return cast(SQLCompiler, compiled)


def cursor_events(engine: Engine) -> tuple[Any, Any]:
    """The engine's ``before_cursor_execute`` and ``after_cursor_execute``
    listeners (``None`` where there are none), for the hot path to call as
    ``Connection`` would, with no execution context (which the events
    document as possible)."""
    dispatch = engine.dispatch
    return dispatch.before_cursor_execute or None, dispatch.after_cursor_execute or None


def driver_error(dialect: Dialect, exc: Exception, *, invalidated: bool) -> BaseException:
    """The driver's error ``exc`` as ``Connection`` would raise it."""
    return DBAPIError.instance(
        None,
        None,
        exc,
        dialect.loaded_dbapi.Error,
        connection_invalidated=invalidated,
        dialect=dialect,
    )
