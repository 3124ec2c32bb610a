"""Worker rows in the store (issue 17): registration, heartbeats, graceful
stops, listings with what each worker runs, and their retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from runtrack.models import RunStatus
from runtrack.store import dialects
from runtrack.store.base import Transactions
from runtrack.store.rows import aware, aware_required, naive
from runtrack.store.schema import jobs, runs, workers

__all__ = ["WorkerRow", "WorkerRunRow", "WorkerStore"]

# A re-registration under the same id (a restarted worker that names itself)
# starts afresh: every column but the id.
_REGISTERED = ["host", "pid", "version", "concurrency", "jobs", "started_at", "last_seen_at",
               "stopped_at"]  # fmt: skip


class WorkerRow(NamedTuple):
    """A worker's row, as :meth:`WorkerStore.listing` reads it."""

    id: str
    host: str
    pid: int
    version: str
    concurrency: int
    jobs: list[dict[str, Any]] | None  # [{"key", "schedule", "tz"}, ...]
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None


class WorkerRunRow(NamedTuple):
    """A running run of a worker, as :meth:`WorkerStore.running` reads it."""

    id: int
    job_key: str
    started_at: datetime | None
    heartbeat_at: datetime | None
    worker_id: str


class WorkerStore:
    """The ``workers`` table, and the schedules its rows register on ``jobs``."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def register(self, values: dict[str, Any], providers: dict[str, str], now: datetime) -> None:
        """Insert (or restart) the worker's row and record each served job's
        schedule on its job row (creating the job if it is new), in one
        transaction. The job rows are written here only, in key order, not
        on heartbeats: whether a live worker serves a job is read from the
        worker rows (:meth:`serving`)."""
        row = {**values, "started_at": naive(now), "last_seen_at": naive(now), "stopped_at": None}
        served: Sequence[dict[str, Any]] = values["jobs"]

        def work(conn: Connection) -> None:
            conn.execute(dialects.upsert(conn, workers, row, _REGISTERED))
            for job in sorted(served, key=lambda j: str(j["key"])):
                new = {
                    "key": job["key"],
                    "provider": providers.get(job["key"]),
                    "created_at": naive(now),
                    "consecutive_failures": 0,
                }
                conn.execute(dialects.insert_ignore(conn, jobs, new))
                conn.execute(
                    update(jobs)
                    .where(jobs.c.key == job["key"])
                    .values(schedule=job["schedule"], schedule_tz=job["tz"])
                )

        self.tx.write(work)

    def seen(self, worker_id: str, now: datetime) -> bool:
        """Heartbeat the row (its own row only, never a job's); ``False`` if
        there is none (pruned: register again)."""
        query = (
            update(workers)
            .where(workers.c.id == worker_id)
            .values(last_seen_at=naive(now), stopped_at=None)
        )
        return self.tx.write(lambda c: c.execute(query).rowcount) > 0

    def stopped(self, worker_id: str, now: datetime) -> None:
        query = (
            update(workers)
            .where(workers.c.id == worker_id)
            .values(last_seen_at=naive(now), stopped_at=naive(now))
        )
        self.tx.write(lambda c: c.execute(query))

    def serving(self, live_since: datetime) -> frozenset[str]:
        """The keys of the jobs that live workers serve: those listed in the
        rows of workers not stopped and last seen at or after ``live_since``.
        Worker rows are few; their job lists are read here rather than
        matched as JSON in SQL."""
        query = select(workers.c.jobs).where(
            workers.c.stopped_at.is_(None), workers.c.last_seen_at >= naive(live_since)
        )
        rows: list[Any] = self.tx.read(lambda c: list(c.execute(query).scalars()))
        return frozenset(job["key"] for served in rows for job in served or ())

    def listing(self, seen_since: datetime | None) -> list[WorkerRow]:
        """Worker rows last seen at or after ``seen_since`` (all if ``None``),
        most recently started first."""
        query = select(workers).order_by(workers.c.started_at.desc(), workers.c.id)
        if seen_since is not None:
            query = query.where(workers.c.last_seen_at >= naive(seen_since))
        found = self.tx.read(lambda c: list(c.execute(query).all()))
        return [
            WorkerRow(
                id=row.id,
                host=row.host,
                pid=row.pid,
                version=row.version,
                concurrency=row.concurrency,
                jobs=row.jobs,
                started_at=aware_required(row.started_at),
                last_seen_at=aware_required(row.last_seen_at),
                stopped_at=aware(row.stopped_at),
            )
            for row in found
        ]

    def running(self, worker_ids: Sequence[str]) -> list[WorkerRunRow]:
        """The running runs of these workers, oldest first (running runs are
        few: the ``(status, id)`` index finds them)."""
        if not worker_ids:
            return []
        query = (
            select(
                runs.c.id,
                runs.c.job_key,
                runs.c.status,
                runs.c.started_at,
                runs.c.heartbeat_at,
                runs.c.worker_id,
            )
            .where(runs.c.status == RunStatus.RUNNING.value)
            .where(runs.c.worker_id.in_(list(worker_ids)))
            .order_by(runs.c.id)
        )
        found = self.tx.read(lambda c: list(c.execute(query).all()))
        return [
            WorkerRunRow(r.id, r.job_key, aware(r.started_at), aware(r.heartbeat_at), r.worker_id)
            for r in found
        ]

    def prune(self, seen_before: datetime) -> int:
        """Delete the rows of workers last seen before ``seen_before``."""
        query = delete(workers).where(workers.c.last_seen_at < naive(seen_before))
        return int(self.tx.write(lambda c: c.execute(query).rowcount))
