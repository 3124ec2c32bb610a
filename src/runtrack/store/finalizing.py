"""Finalization: the one writer of what a run's end changes.

A run becomes terminal by one conditional UPDATE of its row: the owner's
(fenced by uid), one by id (a finish or a cancel without a handle), or one
for a set of runs (a reap, a cancelled backfill). In the same transaction,
and in this order, which is the lock order of every path (run, job, tally):

1. its job's state: pointers, failure streak (counted in run id order),
   watermark, checkpoint, strip (:func:`~runtrack.store.statements.job_change`);
2. its job's tallies, summed per job and status;
3. what its job owes, settled here for a run that ended without its handle
   (the owner settles its own, after its last items).

Every path builds those statements with :func:`final_statements` and writes
them with :func:`write_final`; the PostgreSQL hot path sends the very same
statements, only pipelined with the run's UPDATE (see :func:`finalize_one`).
A run that was not moved gets none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update, UpdateBase

from runtrack.models import TERMINAL, RunStatus
from runtrack.store.carry import settle_ended
from runtrack.store.prepared import RawConnection
from runtrack.store.rows import naive
from runtrack.store.statements import (
    RUN_EFFECT,
    TALLY_ITEMS,
    Conn,
    counts_given,
    effect_of,
    job_change,
    tally_params,
    tally_upsert,
    update_run_stmt,
)
from runtrack.store.values import JobEffect, RunEnd

__all__ = [
    "Ended",
    "NotMoved",
    "end_columns",
    "ended_by_row",
    "final_statements",
    "finalize_one",
    "run_change",
    "write_final",
]

#: A statement and its parameters: one dict, or a list of them (executemany).
Statement = tuple[UpdateBase, dict[str, Any] | list[dict[str, Any]]]


class NotMoved(Exception):
    """Internal: a pipelined finalization found the run not ours; raised so
    that its transaction, job and tally statements included, rolls back."""


@dataclass(frozen=True, slots=True)
class Ended:
    """A run that just became terminal, as its job and tallies see it."""

    run_id: int
    status: RunStatus
    #: Its final values (naive UTC ``finished_at``; the error type and retry
    #: flag decide whether a failure counts toward the streak).
    values: Mapping[str, Any]
    effect: JobEffect
    #: Its item tallies (the owner's values, or the counts stored on the row).
    counted: Mapping[str, Any]
    #: The run's RUN_EFFECT row when it ended without its handle: what it
    #: owes is settled here. ``None``: the owner settles it.
    row: Any = None


def ended_by_row(run_id: int, status: RunStatus, values: Mapping[str, Any], row: Any) -> Ended:
    """A run ended without its handle, read back by RUN_EFFECT (or the set's
    RETURNING, which has the same columns)."""
    return Ended(run_id, status, values, effect_of(row), _counted(row, values), row)


def _counted(row: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """The item tallies stored on a run's row, unless ``values`` give them."""
    return {**{column: getattr(row, column) for column in TALLY_ITEMS}, **values}


#: RunEnd fields stored as they are, in columns of the same name.
_AS_IS = (
    "error_type",
    "error_message",
    "error_stack",
    "error_details",
    "counters",
    "notes",
    "progress_total",
    "progress_done",
    "groups_found",
    "groups_missing",
    "cancel_requested_by",
    "cancel_reason",
)


def end_columns(end: RunEnd) -> dict[str, Any]:
    """The columns a run's end writes (naive UTC times; a ``None`` field is
    not written)."""
    values: dict[str, Any] = {"finished_at": naive(end.finished_at)}
    for name in _AS_IS:
        value = getattr(end, name)
        if value is not None:
            values[name] = value
    if end.items is not None:
        for status, count in end.items.items():
            values[f"items_{status}"] = count
    if end.retried:
        values["retried"] = True
    if end.cancel_requested_at is not None:
        values["cancel_requested_at"] = naive(end.cancel_requested_at)
    return values


def run_change(
    run_id: int,
    target: RunStatus,
    allowed: Iterable[RunStatus],
    values: Mapping[str, Any],
    uid: str | None,
    where: Sequence[ColumnElement[bool]] = (),
) -> tuple[Update, dict[str, Any]]:
    """The conditional UPDATE moving one run to ``target``, and its parameters."""
    params = dict(values, status=target.value, p_id=run_id)
    if target in TERMINAL:
        params["lease_key"] = None
    if uid is not None:
        params["p_uid"] = uid
    stmt = update_run_stmt(
        uid is not None,
        tuple(sorted(status.value for status in allowed)),
        target in TERMINAL and not counts_given(values),
    )
    return (stmt.where(*where) if where else stmt), params


def final_statements(ended: Sequence[Ended], dialect: str) -> list[Statement]:
    """The job updates of ``ended`` (in the order given: id order, so that a
    job's failure streak counts its runs in order; alike ones batched), then
    their tallies, one upsert row per job and status whatever the runs."""
    jobs: list[tuple[Update, list[dict[str, Any]]]] = []
    tallies: dict[tuple[str, str], dict[str, Any]] = {}
    for end in ended:
        finished = end.values["finished_at"]
        stmt, params = job_change(end.run_id, end.status, finished, end.effect, end.values)
        if jobs and jobs[-1][0] is stmt:
            jobs[-1][1].append(params)
        else:
            jobs.append((stmt, [params]))
        job, started = end.effect.job_key, end.effect.started_at
        _add_to(tallies, tally_params(job, end.status, started, finished, end.counted))
    found: list[Statement] = [(stmt, _one_or_many(batch)) for stmt, batch in jobs]
    if tallies:
        found.append((tally_upsert(dialect), _one_or_many(list(tallies.values()))))
    return found


def _add_to(tallies: dict[tuple[str, str], dict[str, Any]], add: dict[str, Any]) -> None:
    """Add one run's amounts to the sum of its job and status (tallies are
    sums: one upsert row per job and status, whatever the runs)."""
    total = tallies.setdefault((add["job_key"], add["status"]), add)
    if total is not add:
        for column, amount in add.items():
            if column not in ("job_key", "status"):
                total[column] += amount


def _one_or_many(rows: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    """One row's parameters as a dict: one execution (pipelined on the hot
    path, which sends no executemany), not an executemany of one."""
    return rows[0] if len(rows) == 1 else rows


def write_final(conn: Conn, ended: Sequence[Ended]) -> None:
    """Write what the end of ``ended`` (runs whose UPDATE this transaction
    just made) changes besides the runs: jobs, tallies, what jobs owe."""
    for stmt, params in final_statements(ended, conn.dialect.name):
        conn.execute(stmt, params)
    unowned = [(end.run_id, end.status, end.row) for end in ended if end.row is not None]
    if unowned:
        # Settling reads and writes what it finds: SQLAlchemy's connection
        # (the by-id and set paths' transactions, never the hot path's).
        assert isinstance(conn, Connection)
        settle_ended(conn, unowned, ended[0].values["finished_at"])


def finalize_one(
    conn: Conn,
    run_id: int,
    target: RunStatus,
    allowed: Iterable[RunStatus],
    values: dict[str, Any],
    uid: str | None,
    where: Sequence[ColumnElement[bool]] = (),
    effect: JobEffect | None = None,
    *,
    pipelined: bool = False,
) -> bool:
    """Move one run to ``target`` if it is in ``allowed`` (uid and ``where``
    matching), and if it was moved to a terminal status, write the rest of
    its end (:func:`write_final`). Returns whether the run was moved.

    ``effect`` is what the caller knows of the job (the owner); without it,
    or without the item tallies in ``values``, the run's row is read back
    after its UPDATE. ``pipelined`` (the owner on PostgreSQL's hot path):
    the same statements, sent in one round trip with BEGIN; they do not wait
    for the run's row count, so a run not moved raises :class:`NotMoved`."""
    change = run_change(run_id, target, allowed, values, uid, where)
    if target not in TERMINAL:
        return bool(conn.execute(*change).rowcount == 1)
    if effect is not None and counts_given(values):
        ended = Ended(run_id, target, values, effect, values)
        if pipelined:
            assert isinstance(conn, RawConnection)
            with conn.pipelined():
                moved = conn.execute(*change)
                write_final(conn, (ended,))
            if moved.rowcount != 1:
                raise NotMoved
            return True
        if conn.execute(*change).rowcount != 1:
            return False
        write_final(conn, (ended,))
        return True
    if conn.execute(*change).rowcount != 1:
        return False
    row = conn.execute(RUN_EFFECT, {"p_id": run_id}).one()
    if effect is None:  # by id: no handle, no items still to write
        write_final(conn, (ended_by_row(run_id, target, values, row),))
    else:  # the owner's effect, its items counted from the stored rows
        write_final(conn, (Ended(run_id, target, values, effect, _counted(row, values)),))
    return True
