"""Liveness in the store: batched heartbeats, fenced writes, the reaper's queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    case,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update

from runtrack.models import (
    ALLOWED_FROM,
    TERMINAL,
    RunStatus,
)
from runtrack.store.base import Transactions
from runtrack.store.carry import settle
from runtrack.store.finalizing import (
    NotMoved,
    end_columns,
    ended_by_row,
    finalize_one,
    write_final,
)
from runtrack.store.guards import Guard
from runtrack.store.prepared import RawConnection
from runtrack.store.rows import (
    naive,
)
from runtrack.store.schema import (
    runs,
)
from runtrack.store.staleness import cancel_requested, conditions, expired, stale_ranges
from runtrack.store.statements import (
    BEAT_CHUNK,
    COUNTED_ITEMS,
    INSERT_ITEMS,
    LOCK_RUN,
    LOCK_RUNS,
    RUN_EFFECT,
    counts_given,
    group_alike,
)
from runtrack.store.values import Change, JobEffect, NewItem, RunEnd, RunState

Guards = tuple[Guard, ...]


class LivenessStore:
    """Heartbeats, fenced item writes, stale-run scans and reaping in sets."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    # -- liveness ------------------------------------------------------------

    def heartbeat(self, now: datetime, beats: list[dict[str, Any]]) -> dict[int, RunState]:
        """Write ``heartbeat_at``, counters and progress of many runs, then read
        back their status and cancel request: one transaction, one UPDATE and
        one SELECT per 500 runs. The UPDATE is fenced (uid, still running); a
        run whose row is not running under its uid is absent from the answer
        unless its status says why."""

        def work(conn: Connection) -> dict[int, RunState]:
            states: dict[int, RunState] = {}
            for start in range(0, len(beats), BEAT_CHUNK):
                chunk = beats[start : start + BEAT_CHUNK]
                conn.execute(self._beat_update(now, chunk))
                owners = {beat["b_id"]: beat["b_uid"] for beat in chunk}
                query = select(
                    runs.c.id,
                    runs.c.uid,
                    runs.c.status,
                    runs.c.cancel_requested_at,
                    runs.c.cancel_reason,
                ).where(runs.c.id.in_(list(owners)))
                for row in conn.execute(query):
                    if owners[row.id] == row.uid:
                        states[row.id] = (row.status, row.cancel_requested_at, row.cancel_reason)
            return states

        return self.tx.write(work) if beats else {}

    @staticmethod
    def _beat_update(now: datetime, beats: Sequence[dict[str, Any]]) -> Update:
        """One UPDATE for many runs, each getting its own counters and progress
        through a CASE on id (portable, unlike UPDATE ... FROM VALUES)."""

        def per_run(key: str, column: Any) -> Any:
            whens = {b["b_id"]: bindparam(None, b[key], type_=column.type) for b in beats}
            return case(whens, value=runs.c.id, else_=column)

        return (
            update(runs)
            .where(
                runs.c.id.in_([b["b_id"] for b in beats]),
                runs.c.uid.in_([b["b_uid"] for b in beats]),
                runs.c.status == RunStatus.RUNNING,
            )
            .values(
                heartbeat_at=naive(now),
                counters=per_run("b_counters", runs.c.counters),
                progress_total=per_run("b_total", runs.c.progress_total),
                progress_done=per_run("b_done", runs.c.progress_done),
            )
        )

    def stale_runs(
        self,
        heartbeat_cutoff: datetime,
        cancel_cutoff: datetime,
        limit: int,
        pending_cutoff: datetime | None = None,
    ) -> list[tuple[int, str, str, str]]:
        """(id, reason, status, job) of active runs past their deadline; the
        reason is ``heartbeat`` (``heartbeat+cancel`` when a cancel is
        pending), ``cancel`` or ``expired`` (pending since before
        ``pending_cutoff``, whether or not a live worker serves the job: the
        reaper checks that only if there are any). Each query is a range of
        an index, so the cost follows the number of stale runs (and of
        pending runs past the TTL)."""
        ranges = [*stale_ranges(heartbeat_cutoff), ("cancel", cancel_requested(cancel_cutoff))]
        if pending_cutoff is not None:
            ranges.append(("expired", expired(pending_cutoff)))
        queries = [
            (reason, select(runs.c.id, runs.c.status, runs.c.job_key).where(*conditions))
            for reason, conditions in ranges
        ]

        def work(conn: Connection) -> list[tuple[int, str, str, str]]:
            found: dict[int, tuple[int, str, str, str]] = {}
            for reason, query in queries:
                query = query.add_columns(runs.c.cancel_requested_at)
                for row in conn.execute(query.order_by(runs.c.id).limit(limit)):
                    cancel = reason == "heartbeat" and row.cancel_requested_at is not None
                    why = reason + "+cancel" * cancel
                    found.setdefault(row.id, (row.id, why, row.status, row.job_key))
            return list(found.values())[:limit]

        return self.tx.read(work)

    def transition_many(self, changes: Sequence[Change]) -> list[int]:
        """Several guarded transitions in one transaction; the ids changed.

        Runs moving alike (same target, guard and values: the stale runs of
        one reap, the queued windows of a cancelled backfill) change in one
        UPDATE, then their jobs and tallies in a batch each: a few statements
        per hundred runs, not four per run."""

        def in_sets(conn: Connection) -> list[int]:
            moved: list[tuple[int, RunStatus, dict[str, Any], Any]] = []
            written = [(i, to, old, end_columns(end), on) for i, to, old, end, on in changes]
            for ids, (target, allowed, values, guards) in group_alike(written):
                where = conditions(guards)
                moved += self._transition_set(conn, ids, target, allowed, values, where)
            moved.sort(key=lambda change: change[0])  # a failure streak counts in id order
            ended = [ended_by_row(*change) for change in moved if change[1] in TERMINAL]
            if ended:
                write_final(conn, ended)
            done = {run_id for run_id, *_ in moved}
            return [run_id for run_id in dict.fromkeys(c[0] for c in changes) if run_id in done]

        return self.tx.write(in_sets)

    @staticmethod
    def _transition_set(
        conn: Connection,
        ids: tuple[int, ...],
        target: RunStatus,
        allowed: frozenset[RunStatus],
        values: dict[str, Any],
        where: list[ColumnElement[bool]],
    ) -> list[tuple[int, RunStatus, dict[str, Any], Any]]:
        """One guarded UPDATE of many runs; (id, target, values, RUN_EFFECT
        row) of each run it changed."""
        changes = dict(values, status=target.value)
        if target in TERMINAL:
            changes["lease_key"] = None
            if not counts_given(values):
                changes.update(COUNTED_ITEMS)
        chosen = (runs.c.id.in_(ids), runs.c.status.in_(sorted(allowed)), *where)
        effect = (runs.c.id, *RUN_EFFECT.selected_columns)
        if conn.dialect.update_returning:
            stmt = update(runs).where(*chosen).values(changes).returning(*effect)
            return [(row.id, target, values, row) for row in conn.execute(stmt)]
        # MariaDB has no UPDATE ... RETURNING: the runs that qualify are locked,
        # changed by id (nobody can move them in between), then read back.
        locked = [i for (i,) in conn.execute(select(runs.c.id).where(*chosen).with_for_update())]
        if not locked:
            return []
        conn.execute(update(runs).where(runs.c.id.in_(locked)).values(changes))
        rows = conn.execute(select(*effect).where(runs.c.id.in_(locked)))
        return [(row.id, target, values, row) for row in rows]

    def insert_items_fenced(
        self, rows: list[NewItem], owners: dict[int, str], now: datetime
    ) -> dict[int, str | None]:
        """Insert the items of the runs in ``owners`` (id -> uid) that are still
        running under that uid, with those runs' rows locked so that no reaper
        finalizes one mid-way; the rows of the others are dropped. Returns the
        runs that are not ours any more, with their status (None: gone).
        The items are recorded ``now``."""
        stamp(rows, now)

        def work(conn: RawConnection) -> dict[int, str | None]:
            found = {row.id: row for row in self._lock_runs(conn, sorted(owners))}
            lost = {
                run_id: found[run_id].status if run_id in found else None
                for run_id, uid in owners.items()
                if run_id not in found
                or (found[run_id].uid, found[run_id].status) != (uid, RunStatus.RUNNING)
            }
            kept = [row for row in rows if row["run_id"] not in lost] if lost else rows
            if kept:
                conn.execute(INSERT_ITEMS, kept)
            return lost

        return self.tx.write_prepared(work) if rows else {}

    @staticmethod
    def _lock_runs(conn: RawConnection, ids: list[int]) -> list[Any]:
        """Lock the rows of ``ids`` in id order, like the heartbeat and the
        reaper, so that their row locks never deadlock."""
        if len(ids) == 1:
            return conn.execute(LOCK_RUN, {"p_id": ids[0]}).all()
        rows: list[Any] = []
        for start in range(0, len(ids), BEAT_CHUNK):
            chunk = ids[start : start + BEAT_CHUNK]
            chunk += [chunk[-1]] * (BEAT_CHUNK - len(chunk))
            rows += conn.execute(LOCK_RUNS, {f"p_id{i}": v for i, v in enumerate(chunk)})
        return rows

    def finalize_run(
        self,
        run_id: int,
        uid: str,
        target: RunStatus,
        end: RunEnd,
        effect: JobEffect,
        items: list[NewItem],
    ) -> bool | None:
        """The owner's final write: the fenced transition and, only if it
        happened, the run's last buffered items, in one transaction (so a
        retried attempt never repeats them and a fenced one writes nothing).
        Returns whether the transition happened; ``None`` if it did not on a
        retried attempt, after an earlier one that may have committed and
        lost only its answer (the caller re-reads to tell)."""
        tries = 0
        allowed = ALLOWED_FROM[target]
        values = end_columns(end)
        stamp(items, end.finished_at)
        if effect.carry is not None:
            # What the job owes is settled in the same transaction, after
            # the last items: the rarer path, on SQLAlchemy's connection.
            carry = effect.carry

            def settling(conn: Connection) -> bool:
                nonlocal tries
                tries += 1
                if not finalize_one(conn, run_id, target, allowed, values, uid, (), effect):
                    return False
                if items:
                    conn.execute(INSERT_ITEMS, items)
                settle(conn, carry, target, values["finished_at"])
                return True

            changed = self.tx.write(settling)
            return None if not changed and tries > 1 else changed
        # Where the driver pipelines (psycopg on PostgreSQL): BEGIN, the run,
        # its job and its tally in one round trip.
        pipelined = self.tx.pipelines

        def work(conn: RawConnection) -> bool:
            nonlocal tries
            tries += 1
            if not finalize_one(
                conn, run_id, target, allowed, values, uid, (), effect, pipelined=pipelined
            ):
                return False
            if items:
                conn.execute(INSERT_ITEMS, items)
            return True

        try:
            changed = self.tx.write_prepared(work)
        except NotMoved:
            changed = False
        return None if not changed and tries > 1 else changed


def stamp(items: list[NewItem], at: datetime) -> None:
    """Date the items a write takes (naive UTC); an item put back after a
    failed write keeps the date of its first attempt."""
    if items:
        recorded = naive(at)
        for item in items:
            item.setdefault("recorded_at", recorded)
