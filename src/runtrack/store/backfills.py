"""Backfills in the database (issue 17): the ``backfills`` table and the runs
that carry its id (``runs.backfill_id``, index ``ix_runs_backfill``).

A backfill and all its windows' runs are written in one transaction, so a
backfill is queued whole or not at all. Its progress is read from its runs:
the latest run of each window (by id) says where that window stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, select, text, update

from runtrack.backfills import BackfillProgress, BackfillRecord, WindowState
from runtrack.models import RunStatus
from runtrack.store.base import Transactions
from runtrack.store.new_run import run_row
from runtrack.store.rows import aware_required, naive
from runtrack.store.schema import backfills, jobs, runs
from runtrack.store.statements import INSERT_RUN
from runtrack.store.values import NewRun

__all__ = ["CHANNEL", "BackfillRow", "BackfillStore", "LatestRun"]

T = TypeVar("T")
#: The PostgreSQL channel of queued runs (the one :mod:`runtrack.store.queue`
#: notifies on; kept here too so that this module does not import that one).
CHANNEL = "runtrack_queue"


@dataclass(frozen=True, slots=True)
class LatestRun:
    """The latest run of one window of a backfill (aware UTC window)."""

    window_start: datetime
    window_end: datetime
    run_id: int
    status: RunStatus
    runs: int


@dataclass(frozen=True, slots=True)
class BackfillRow:
    """A backfill as stored, with its progress, and the latest run of each
    of its windows, in window order."""

    record: BackfillRecord
    latest: list[LatestRun]


class BackfillStore:
    """Create, read, cancel and resume backfills."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def create(
        self,
        job: str,
        window: tuple[datetime, datetime, timedelta],
        windows: int,
        max_parallel: int | None,
        by: str,
        now: datetime,
        children: list[NewRun],
    ) -> int | None:
        """Insert the backfill of ``job`` over ``window`` (start, end, step)
        and its pending runs in one transaction; its id, or ``None`` if the
        job has no row."""
        start, end, every = window
        row = {
            "job_key": job,
            "range_start": naive(start),
            "range_end": naive(end),
            "step_seconds": int(every.total_seconds()),
            "windows": windows,
            "max_parallel": max_parallel,
            "triggered_by": by,
            "created_at": naive(now),
            "state": "active",
        }

        def work(conn: Connection) -> int | None:
            if not self._lock_job(conn, job):
                return None
            key = conn.execute(backfills.insert().values(row)).inserted_primary_key
            assert key is not None
            backfill_id = int(key[0])
            self._insert_runs(conn, backfill_id, children)
            return backfill_id

        return self.tx.write(work, read_committed=True)

    def requeue(self, backfill_id: int, children: Callable[[BackfillRow], list[NewRun]]) -> int:
        """Resume: under the backfill's lock, read where its windows stand,
        insert the runs ``children`` makes of that, mark it active again;
        how many runs were queued."""

        def work(conn: Connection) -> int:
            found = self._read(conn, backfill_id, lock=True)
            assert found is not None  # the caller checked it exists
            values = children(found)
            self._insert_runs(conn, backfill_id, values)
            conn.execute(
                update(backfills).where(backfills.c.id == backfill_id).values(state="active")
            )
            return len(values)

        return self.tx.write(work, read_committed=True)

    def mark_cancelled(self, backfill_id: int) -> list[int]:
        """Mark the backfill cancelled; the ids of its pending runs then (the
        caller cancels them with guarded transitions)."""

        def work(conn: Connection) -> list[int]:
            conn.execute(
                update(backfills).where(backfills.c.id == backfill_id).values(state="cancelled")
            )
            pending = select(runs.c.id).where(
                runs.c.backfill_id == backfill_id, runs.c.status == RunStatus.PENDING
            )
            return [int(i) for i in conn.execute(pending.order_by(runs.c.id)).scalars()]

        return self.tx.write(work, read_committed=True)

    def get(self, backfill_id: int) -> BackfillRow | None:
        return self.tx.read(lambda conn: self._read(conn, backfill_id, lock=False))

    def recent(self, job: str | None, limit: int) -> list[BackfillRow]:
        """The newest backfills first (of one job if given)."""
        query = select(backfills.c.id).order_by(backfills.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(backfills.c.job_key == job)

        def work(conn: Connection) -> list[BackfillRow]:
            ids = [int(i) for i in conn.execute(query).scalars()]
            return [row for i in ids if (row := self._read(conn, i, lock=False)) is not None]

        return self.tx.read(work)

    def retry_stands(self, backfill_id: int, window_start: datetime, after_run: int) -> bool:
        """Whether a retry of run ``after_run`` (of this window of the
        backfill) may be queued: the backfill is not cancelled and no run of
        the window came after it (a resume or a re-run queued it again)."""
        state = select(backfills.c.state).where(backfills.c.id == backfill_id)
        later = (
            select(runs.c.id)
            .where(
                runs.c.backfill_id == backfill_id,
                runs.c.window_start == naive(window_start),
                runs.c.id > after_run,
            )
            .limit(1)
        )

        def work(conn: Connection) -> bool:
            if conn.execute(state).scalar() in (None, "cancelled"):
                return False
            return conn.execute(later).first() is None

        return self.tx.read(work)

    # -- helpers -------------------------------------------------------------------

    def _lock_job(self, conn: Connection, job: str) -> bool:
        lock = select(jobs.c.key).where(jobs.c.key == job)
        if self.tx.dialect != "sqlite":
            lock = lock.with_for_update()
        return conn.execute(lock).first() is not None

    def _insert_runs(self, conn: Connection, backfill_id: int, children: list[NewRun]) -> None:
        if not children:
            return
        rows = [run_row(child._replace(backfill_id=backfill_id)) for child in children]
        conn.execute(INSERT_RUN, rows)
        if self.tx.dialect == "postgresql":  # wake idle workers at commit
            job = children[0].job
            conn.execute(text("SELECT pg_notify(:channel, :job)"), {"channel": CHANNEL, "job": job})

    def _read(self, conn: Connection, backfill_id: int, *, lock: bool) -> BackfillRow | None:
        query = select(backfills).where(backfills.c.id == backfill_id)
        if lock and self.tx.dialect != "sqlite":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            return None
        children = (
            select(runs.c.id, runs.c.window_start, runs.c.window_end, runs.c.status)
            .where(runs.c.backfill_id == backfill_id)
            .order_by(runs.c.id)
        )
        latest: dict[datetime, LatestRun] = {}
        for child in conn.execute(children):
            start = aware_required(child.window_start)
            before = latest.get(start)
            latest[start] = LatestRun(
                start,
                aware_required(child.window_end),
                int(child.id),
                RunStatus(child.status),
                before.runs + 1 if before else 1,
            )
        # Each window stands where its latest run stands; a window with no
        # run (its runs pruned) is missing.
        states = [WindowState.of(run.status) for run in latest.values()]
        progress = BackfillProgress.of(states)
        missing = max(0, int(row.windows) - len(states))
        record = BackfillRecord(
            id=int(row.id),
            job=row.job_key,
            start=aware_required(row.range_start),
            end=aware_required(row.range_end),
            every=timedelta(seconds=row.step_seconds),
            windows=int(row.windows),
            max_parallel=row.max_parallel,
            triggered_by=row.triggered_by,
            created_at=aware_required(row.created_at),
            cancelled=row.state == "cancelled",
            progress=replace(progress, missing=missing),
        )
        return BackfillRow(record, sorted(latest.values(), key=lambda r: r.window_start))
