"""What a job owes, in the store: the hand-out to a run, listing, forget.

Each owed entry is handed to one run at a time. A run that reads what its job
owes while no other run of the job runs (the common case) takes every owed
entry and writes one row: the last id it took (``runs.carried_upto``); those
entries are its own while it runs, however many there are. A run that reads
while others run claims, in one UPDATE, the owed entries past their
``carried_upto`` that no running run holds (``carried.handed_to_run_id``),
and reads back those; its end releases them
(:func:`runtrack.store.carry.settle`). The job's row is locked while a run
takes its share, so two runs never both think they are alone. Concurrent
runs of one job (``concurrency`` > 1, a queue's runners) so get disjoint
entries, and a run of ``concurrency=1`` pays one row per hand-out, not one
per entry.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, delete, exists, or_, select, type_coerce, update
from sqlalchemy.engine import Connection, Result

from runtrack.models import Carried, CarriedItem, CarriedSlice, CarryState, RunStatus
from runtrack.store.base import Transactions
from runtrack.store.rows import aware, naive
from runtrack.store.schema import carried, jobs, runs

__all__ = ["RUNNING_OTHERS", "CarryStore", "carried_records", "holding"]

#: Rows fetched at a time while records are built.
CHUNK = 500
ITEM = "item"

OWES = exists().where(carried.c.job_key == bindparam("p_job"))
#: The columns of a record, in the order carried_records unpacks them (not the
#: job key: the queries select one job, exactly). The two timestamps every
#: entry has come as the driver gives them (SQLite: text): the entries of one
#: run share them, so each distinct value is parsed once.
RECORD = tuple(
    carried.c[name]
    for name in (
        "id", "kind", "state", "item_key", "group_key", "source", "data",
        "slice_start", "slice_end", "last_error", "attempts", "first_run_id", "last_run_id",
    )
) + tuple(type_coerce(carried.c[n], String) for n in ("created_at", "updated_at"))  # fmt: skip
OWED = (
    select(*RECORD)
    .where(carried.c.job_key == bindparam("p_job"), carried.c.state == CarryState.OWED.value)
    .order_by(carried.c.id)
)
LISTED = select(*RECORD).where(carried.c.job_key == bindparam("p_job")).order_by(carried.c.id)
OWED_TO = OWED.where(carried.c.handed_to_run_id == bindparam("p_run"))
_STATES = {state.value: state for state in CarryState}


def holding(run_id: Any) -> Any:
    """Whether the run ``run_id`` (a column or a value) still runs: only a
    running run holds the entries handed to it (a reaped one holds nothing)."""
    return exists().where(runs.c.id == run_id, runs.c.status == RunStatus.RUNNING.value)


#: The job's other running runs, and the entries each took as the only one.
RUNNING_OTHERS = select(runs.c.id, runs.c.carried_upto).where(
    runs.c.job_key == bindparam("p_job"),
    runs.c.status == RunStatus.RUNNING.value,
    runs.c.id != bindparam("p_run"),
)
LOCK_JOB = select(jobs.c.key).where(jobs.c.key == bindparam("p_job")).with_for_update()
MARK = update(runs).where(runs.c.id == bindparam("p_run")).values(carried_upto=bindparam("p_upto"))
#: Claim for run ``p_run`` the job's owed entries past ``p_after`` (what a run
#: that was alone took) that no running run holds.
CLAIM = (
    update(carried)
    .where(
        carried.c.job_key == bindparam("p_job"),
        carried.c.state == CarryState.OWED.value,
        carried.c.id > bindparam("p_after"),
        or_(
            carried.c.handed_to_run_id.is_(None),
            ~holding(carried.c.handed_to_run_id),
        ),
    )
    .values(handed_to_run_id=bindparam("p_run"))
)


def carried_records(result: Result[Any], job: str) -> Carried:
    """Rows of ``carried`` (columns RECORD) of job ``job`` as records, in the
    order given. (A run may be handed 10,000: rows are fetched a chunk at a
    time, the entries of one run share their timestamps, which are converted
    once, states are looked up, not constructed, records are built by setting
    their slots, and the garbage collector, which would scan the growing lists
    again and again for nothing, waits until they are built.)"""
    with _collector_paused():
        return _records(result, job)


def _records(result: Result[Any], job: str) -> Carried:
    items: list[CarriedItem] = []
    slices: list[CarriedSlice] = []
    times: dict[str | datetime, datetime] = {}
    chunks: Iterator[Sequence[Sequence[Any]]] = result.partitions(CHUNK)  # rows of 15 columns
    for chunk in chunks:
        for (
            id_, kind, state, key, group, source, data, start, end, error, attempts,
            first, last, created_at, updated_at,
        ) in chunk:  # fmt: skip
            created = times.get(created_at) or times.setdefault(created_at, _stamp(created_at))
            updated = times.get(updated_at) or times.setdefault(updated_at, _stamp(updated_at))
            if kind == ITEM:
                items.append(
                    _item(
                        id_, job, key, group, source, data, first, last, attempts, error,
                        _STATES[state], created, updated,
                    )
                )  # fmt: skip
            else:
                slices.append(
                    CarriedSlice(
                        id_, job, _at(start), _at(end), first, last, attempts, error,
                        _STATES[state], created, updated,
                    )
                )  # fmt: skip
    return Carried(tuple(items), tuple(slices))


#: CarriedItem's slots, in _item's order of arguments (its fields' order).
_ITEM_SLOTS = tuple(getattr(CarriedItem, f.name).__set__ for f in fields(CarriedItem))


def _item(
    id_: int, job: str, key: str, group: str | None, source: str | None, data: Any,
    first: int, last: int, attempts: int, error: str | None, state: CarryState,
    created: datetime, updated: datetime,
) -> CarriedItem:  # fmt: skip
    """``CarriedItem(...)`` at half the cost: the frozen dataclass's
    ``__init__`` goes through ``object.__setattr__`` for each field; this sets
    the slots through their descriptors (the same record: equal, frozen)."""
    s = _ITEM_SLOTS
    record: CarriedItem = object.__new__(CarriedItem)
    s[0](record, id_)
    s[1](record, job)
    s[2](record, key)
    s[3](record, group)
    s[4](record, source)
    s[5](record, data)
    s[6](record, first)
    s[7](record, last)
    s[8](record, attempts)
    s[9](record, error)
    s[10](record, state)
    s[11](record, created)
    s[12](record, updated)
    return record


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (records hold no
    cycles), back on after it if it was on before."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _stamp(value: str | datetime) -> datetime:
    """A stored timestamp as the driver gives it, as an aware UTC datetime:
    SQLite's text (as SQLAlchemy writes it, ISO 8601), the others' naive value."""
    return _at(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _at(value: datetime | None) -> datetime:
    result = aware(value)
    assert result is not None  # NOT NULL, or set for every slice
    return result


class CarryStore:
    """What jobs owe: hand-out, listing, an operator's forget."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def owes(self, job: str) -> bool:
        """Whether the job has any entry, owed or given up (a run of a job
        that owes nothing settles nothing at its end)."""
        query = select(OWES)
        return bool(self.tx.read(lambda c: c.execute(query, {"p_job": job}).scalar()))

    def owed(self, job: str, run_id: int | None = None) -> Carried:
        """The job's owed entries, oldest first. With ``run_id``, what that
        run is handed: the entries no other running run holds, its own until
        it ends (see the module's docstring)."""
        if run_id is None:
            return self.tx.read(lambda c: carried_records(c.execute(OWED, {"p_job": job}), job))
        return self.tx.write(lambda conn: _hand_out(conn, job, run_id))

    def carried(self, job: str) -> Carried:
        """Every entry of the job, owed and given up, oldest first."""
        return self.tx.read(lambda c: carried_records(c.execute(LISTED, {"p_job": job}), job))

    def forget(self, job: str, entry_id: int) -> bool:
        """Delete one entry of the job; whether it existed."""
        stmt = delete(carried).where(carried.c.job_key == job, carried.c.id == entry_id)
        return bool(self.tx.write(lambda c: c.execute(stmt).rowcount) == 1)

    @staticmethod
    def naive_slices(
        slices: Iterable[tuple[datetime, datetime, str | None]],
    ) -> tuple[tuple[datetime, datetime, str | None], ...]:
        """Reported slices as the table stores their ends (naive UTC)."""
        out = []
        for start, end, reason in slices:
            s, e = naive(start), naive(end)
            assert s is not None and e is not None
            out.append((s, e, reason))
        return tuple(out)


def _hand_out(conn: Connection, job: str, run_id: int) -> Carried:
    params: dict[str, Any] = {"p_job": job, "p_run": run_id}
    conn.execute(LOCK_JOB, params)
    others = conn.execute(RUNNING_OTHERS, params).all()
    if not others:  # alone: every owed entry, and one row saying so
        # Built as the rows arrive: 10,000 rows are never all held at once.
        handed = carried_records(conn.execute(OWED, params), job)
        lasts = [part[-1].id for part in (handed.items, handed.slices) if part]  # by id
        if lasts:
            last = max(lasts)
            conn.execute(MARK, {"p_run": run_id, "p_upto": last})
        return handed
    after = max((other.carried_upto or 0 for other in others), default=0)
    conn.execute(CLAIM, {**params, "p_after": after})
    return carried_records(conn.execute(OWED_TO, params), job)
