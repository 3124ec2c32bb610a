"""What a job owes, in the store: settlement at finalization (the hand-out
and listing are in :mod:`runtrack.store.carry_handout`).

Settlement runs in the transaction that makes the run terminal (after its last
items are written), so a run's end and what it leaves owed never disagree.
It reads the run's failed items back from ``run_items`` rather than holding
them in memory: recording an item costs the same whether or not it fails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    case,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from runtrack.models import (
    DEFAULT_MAX_CARRY_ATTEMPTS,
    GOOD,
    CarryState,
    ItemStatus,
    OnPartial,
    RunStatus,
)
from runtrack.store.carry_handout import RUNNING_OTHERS
from runtrack.store.schema import carried, run_items, runs

__all__ = ["CarryRequest", "settle", "settle_ended"]

log = logging.getLogger("runtrack")

#: Ids or keys per IN list (far below every driver's parameter limit).
CHUNK = 500
ITEM, SLICE = "item", "slice"
#: (item key, group, source): what makes a later item "the same item".
Identity = tuple[str, str | None, str | None]

ENTRIES = select(carried).where(carried.c.job_key == bindparam("p_job")).order_by(carried.c.id)
FAILED_ITEMS = (
    select(
        run_items.c.run_id,
        run_items.c.key,
        run_items.c.group_key,
        run_items.c.source,
        run_items.c.data,
        run_items.c.error,
    )
    .where(run_items.c.run_id == bindparam("p_run"), run_items.c.status == ItemStatus.ERROR.value)
    .order_by(run_items.c.id)
)
RESOLVING = (ItemStatus.SUCCESS.value, ItemStatus.NOT_FOUND.value)


@dataclass(frozen=True, slots=True)
class CarryRequest:
    """What the finalization of run ``run_id`` settles: the entries it was
    handed, the slices it reported failed (naive UTC), its policy."""

    run_id: int
    job_key: str
    policy: OnPartial
    max_attempts: int
    handed: frozenset[int] = frozenset()
    slices: tuple[tuple[datetime, datetime, str | None], ...] = ()


def settle(conn: Connection, req: CarryRequest, status: RunStatus, now: datetime) -> None:
    """Settle what ``req``'s run owes now that it ended ``status``.

    A success/partial run resolves (deletes) the entries it recorded again as
    success or not found, and the slices it was handed (``req.handed``: read
    through ``run.carried``) and did not report failed again. Every other
    entry it was offered counts an attempt (given up at ``max_attempts``),
    whether or not its code read them: nothing is carried forever. A run is
    offered the entries it holds, and the free ones (held by no running run)
    that no run attempted since it started: each attempt is counted once,
    however many runs of the job run at a time. A failed or cancelled run
    resolves nothing and counts nothing. Under ``carry``, what failed and is
    not owed yet becomes owed: items of any run, slices of success/partial
    runs (a failed run's whole window is fetched again). The run's end
    releases what it held."""
    good = status in GOOD
    entries = conn.execute(ENTRIES, {"p_job": req.job_key}).all()
    offered = _offered(conn, req, entries) if good else set()
    failed = {_identity(r): r for r in conn.execute(FAILED_ITEMS, {"p_run": req.run_id})}
    items = {_entry_identity(e): e for e in entries if e.kind == ITEM}
    wanted = set(failed) | (set(items) if good else set())
    resolved = _succeeded(conn, req.run_id, wanted)
    for identity in resolved:
        failed.pop(identity, None)
    reported = {(start, end): reason for start, end, reason in req.slices} if good else {}
    gone: list[int] = []
    tried: list[Any] = []  # entries attempted again without a new error text
    refailed: list[tuple[Any, str | None]] = []
    for entry in entries:
        mine = entry.id in offered
        if entry.kind == ITEM:
            identity = _entry_identity(entry)
            if identity in failed:
                row = failed.pop(identity)
                if mine:
                    refailed.append((entry, row.error))
            elif good and identity in resolved:
                gone.append(entry.id)
            elif mine:
                tried.append(entry)
        else:
            span = (entry.slice_start, entry.slice_end)
            if span in reported:
                error = reported.pop(span)
                if mine:
                    refailed.append((entry, error))
            elif good and entry.id in req.handed:
                gone.append(entry.id)
            elif mine:
                tried.append(entry)
    _delete(conn, gone)
    _attempted(conn, req, tried, refailed, now)
    if req.policy is OnPartial.CARRY:
        _add(conn, req, failed.values(), reported.items(), now)
    if any(entry.handed_to_run_id == req.run_id for entry in entries):
        _release(conn, req)


def _offered(conn: Connection, req: CarryRequest, entries: Sequence[Any]) -> set[int]:
    """The owed entries whose attempt the end of run ``req.run_id`` counts:
    those it holds, and the free ones no run attempted (nor added) since it
    started. (Another running run's entries are that run's to count; an entry
    another run attempted while this one ran was counted by that run.)"""
    owed = [e for e in entries if e.state == CarryState.OWED.value]
    if not owed:
        return set()
    run_id = req.run_id
    me = conn.execute(
        select(runs.c.started_at, runs.c.carried_upto).where(runs.c.id == run_id)
    ).one()
    others = conn.execute(RUNNING_OTHERS, {"p_job": req.job_key, "p_run": run_id}).all()
    held = {other.id for other in others}
    theirs = max((other.carried_upto or 0 for other in others), default=0)
    mine = me.carried_upto or 0
    started = me.started_at
    return {
        e.id
        for e in owed
        if e.handed_to_run_id == run_id
        or e.id <= mine
        or (
            e.handed_to_run_id not in held
            and e.id > theirs
            and started is not None
            and e.updated_at <= started
        )
    }


def _release(conn: Connection, req: CarryRequest) -> None:
    stmt = (
        update(carried)
        .where(carried.c.job_key == req.job_key, carried.c.handed_to_run_id == req.run_id)
        .values(handed_to_run_id=None)
    )
    conn.execute(stmt)


def settle_ended(conn: Connection, ended: Sequence[Any], now: datetime) -> None:
    """Settle runs that became terminal without their handle (reaped, finished
    or cancelled by id): ``ended`` are (run id, status, RUN_EFFECT row). What
    such a run read is not known here: it resolves no slice, and counts an
    attempt on what it was offered if it ended well; its failed items are
    read back like any run's."""
    policies = {run_id: OnPartial(row.on_partial or OnPartial.CARRY) for run_id, _, row in ended}
    # A failed or cancelled run only adds what it failed, under "carry": the
    # common reap costs one query per 500 runs, to find the few with failures.
    adding = [i for i, status, _ in ended if status not in GOOD and policies[i] is OnPartial.CARRY]
    failing = _with_failed_items(conn, adding)
    for run_id, status, row in ended:
        if status in GOOD or run_id in failing:
            attempts = row.max_carry_attempts or DEFAULT_MAX_CARRY_ATTEMPTS
            req = CarryRequest(run_id, row.job_key, policies[run_id], attempts)
            settle(conn, req, status, now)


def _with_failed_items(conn: Connection, run_ids: list[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(run_ids), CHUNK):
        query = (
            select(run_items.c.run_id)
            .where(
                run_items.c.run_id.in_(run_ids[start : start + CHUNK]),
                run_items.c.status == ItemStatus.ERROR.value,
            )
            .distinct()
        )
        found.update(conn.execute(query).scalars())
    return found


def _identity(row: Any) -> Identity:
    return (row.key, row.group_key, row.source)


def _entry_identity(entry: Any) -> Identity:
    return (entry.item_key, entry.group_key, entry.source)


def _succeeded(conn: Connection, run_id: int, wanted: set[Identity]) -> set[Identity]:
    """Which of ``wanted`` the run recorded as success or not found. The keys
    are compared again here: a case-insensitive collation matches more."""
    found: set[Identity] = set()
    keys = sorted({identity[0] for identity in wanted})
    for start in range(0, len(keys), CHUNK):
        query = select(run_items.c.key, run_items.c.group_key, run_items.c.source).where(
            run_items.c.run_id == run_id,
            run_items.c.status.in_(RESOLVING),
            run_items.c.key.in_(keys[start : start + CHUNK]),
        )
        found.update(i for i in map(_identity, conn.execute(query)) if i in wanted)
    return found


def _delete(conn: Connection, ids: list[int]) -> None:
    for start in range(0, len(ids), CHUNK):
        conn.execute(delete(carried).where(carried.c.id.in_(ids[start : start + CHUNK])))


def _attempted(
    conn: Connection,
    req: CarryRequest,
    tried: list[Any],
    refailed: list[tuple[Any, str | None]],
    now: datetime,
) -> None:
    """One more attempt for each entry: the handed ones that did not succeed
    in a statement per chunk, those that failed again (a new error text) one
    row each; given up at ``max_attempts``."""
    ids = [entry.id for entry in tried]
    attempts = carried.c.attempts + 1
    state = case((attempts >= req.max_attempts, CarryState.GIVEN_UP.value), else_=carried.c.state)
    for start in range(0, len(ids), CHUNK):
        stmt = (
            update(carried)
            .where(carried.c.id.in_(ids[start : start + CHUNK]))
            .values(attempts=attempts, state=state, last_run_id=req.run_id, updated_at=now)
        )
        conn.execute(stmt)
    if refailed:
        stmt = (
            update(carried)
            .where(carried.c.id == bindparam("b_id"))
            .values(
                attempts=bindparam("b_attempts"),
                state=bindparam("b_state"),
                last_error=bindparam("b_error"),
                last_run_id=req.run_id,
                updated_at=now,
            )
        )
        conn.execute(stmt, [_bumped(entry, error, req.max_attempts) for entry, error in refailed])
    given_up = [e for e in tried if e.attempts + 1 >= req.max_attempts]
    given_up += [e for e, _ in refailed if e.attempts + 1 >= req.max_attempts]
    newly = [e.id for e in given_up if e.state == CarryState.OWED.value]
    if newly:
        log.warning(
            "job %s: %d carried entr%s given up after %d attempts: %s",
            req.job_key,
            len(newly),
            "y" if len(newly) == 1 else "ies",
            req.max_attempts,
            newly[:20],
            extra={"job": req.job_key, "run_id": req.run_id},
        )


def _bumped(entry: Any, error: str | None, max_attempts: int) -> dict[str, Any]:
    attempts = entry.attempts + 1
    state = CarryState.GIVEN_UP.value if attempts >= max_attempts else entry.state
    return {"b_id": entry.id, "b_attempts": attempts, "b_state": state, "b_error": error}


def _add(
    conn: Connection,
    req: CarryRequest,
    items: Iterable[Any],
    slices: Iterable[tuple[tuple[datetime, datetime], str | None]],
    now: datetime,
) -> None:
    common = {
        "job_key": req.job_key,
        "state": CarryState.OWED.value if req.max_attempts > 1 else CarryState.GIVEN_UP.value,
        "attempts": 1,
        "first_run_id": req.run_id,
        "last_run_id": req.run_id,
        "created_at": now,
        "updated_at": now,
    }
    rows = [
        {
            **common,
            "kind": ITEM,
            "item_key": r.key,
            "group_key": r.group_key,
            "source": r.source,
            "data": r.data,
            "slice_start": None,
            "slice_end": None,
            "last_error": r.error,
        }
        for r in items
    ]
    rows += [
        {
            **common,
            "kind": SLICE,
            "item_key": None,
            "group_key": None,
            "source": None,
            "data": None,
            "slice_start": start,
            "slice_end": end,
            "last_error": reason,
        }
        for (start, end), reason in sorted(slices, key=lambda s: s[0])
    ]
    if rows:
        conn.execute(insert(carried), rows)
