"""Worker rows in the store (issue 17): registration, heartbeats, graceful
stops, listings with what each worker runs, and their retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, or_, select, update
from sqlalchemy.engine import Connection

from runtrack.models import RunStatus
from runtrack.store import dialects
from runtrack.store.base import Transactions
from runtrack.store.rows import naive
from runtrack.store.schema import jobs, runs, workers

__all__ = ["WorkerStore"]

# A re-registration under the same id (a restarted worker that names itself)
# starts afresh: every column but the id.
_REGISTERED = ["host", "pid", "version", "concurrency", "jobs", "started_at", "last_seen_at",
               "stopped_at"]  # fmt: skip


class WorkerStore:
    """The ``workers`` table, and the schedules its rows register on ``jobs``."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def register(self, values: dict[str, Any], providers: dict[str, str], now: datetime) -> None:
        """Insert (or restart) the worker's row and record each served job's
        schedule on its job row (creating the job if it is new) and mark it
        served, in one transaction. Jobs a restarted worker served before
        but not now are served only by the others (:meth:`_unserve`)."""
        row = {**values, "started_at": naive(now), "last_seen_at": naive(now), "stopped_at": None}
        served: Sequence[dict[str, Any]] = values["jobs"]
        keys = {job["key"] for job in served}
        before = select(workers.c.jobs).where(workers.c.id == values["id"])

        def work(conn: Connection) -> None:
            dropped = {j["key"] for j in conn.execute(before).scalar() or ()} - keys
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
                    .values(schedule=job["schedule"], schedule_tz=job["tz"], served_at=naive(now))
                )
            if dropped:
                _unserve(conn, dropped, values["id"])

        self.tx.write(work)

    def seen(self, worker_id: str, now: datetime) -> bool:
        """Heartbeat the row and mark the jobs it serves served (one UPDATE
        of their job rows); ``False`` if there is none (pruned: register
        again)."""
        query = (
            update(workers)
            .where(workers.c.id == worker_id)
            .values(last_seen_at=naive(now), stopped_at=None)
        )
        served = select(workers.c.jobs).where(workers.c.id == worker_id)

        def work(conn: Connection) -> bool:
            if conn.execute(query).rowcount == 0:
                return False
            keys = sorted({j["key"] for j in conn.execute(served).scalar() or ()})
            if keys:
                at = naive(now)
                conn.execute(
                    update(jobs)
                    .where(jobs.c.key.in_(keys))
                    .where(or_(jobs.c.served_at.is_(None), jobs.c.served_at < at))
                    .values(served_at=at)
                )
            return True

        return bool(self.tx.write(work))

    def stopped(self, worker_id: str, now: datetime) -> None:
        """Mark the worker stopped; its jobs stay served only by the others."""
        query = (
            update(workers)
            .where(workers.c.id == worker_id)
            .values(last_seen_at=naive(now), stopped_at=naive(now))
        )
        served = select(workers.c.jobs).where(workers.c.id == worker_id)

        def work(conn: Connection) -> None:
            conn.execute(query)
            keys = {j["key"] for j in conn.execute(served).scalar() or ()}
            if keys:
                _unserve(conn, keys, worker_id)

        self.tx.write(work)

    def listing(self, seen_since: datetime | None) -> list[Row[Any]]:
        """Worker rows last seen at or after ``seen_since`` (all if ``None``),
        most recently started first."""
        query = select(workers).order_by(workers.c.started_at.desc(), workers.c.id)
        if seen_since is not None:
            query = query.where(workers.c.last_seen_at >= naive(seen_since))
        found: list[Row[Any]] = self.tx.read(lambda c: list(c.execute(query).all()))
        return found

    def running(self, worker_ids: Sequence[str]) -> list[Any]:
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
        found: list[Any] = self.tx.read(lambda c: list(c.execute(query).all()))
        return found

    def prune(self, seen_before: datetime) -> int:
        """Delete the rows of workers last seen before ``seen_before``."""
        query = delete(workers).where(workers.c.last_seen_at < naive(seen_before))
        return int(self.tx.write(lambda c: c.execute(query).rowcount))


def _unserve(conn: Connection, keys: set[str], worker_id: str) -> None:
    """Set the ``served_at`` of ``keys``, which ``worker_id`` no longer
    serves, to the latest heartbeat of the other workers (not stopped) that
    serve each, or NULL: workers are few, their job lists are read here
    rather than matched as JSON in SQL."""
    others = select(workers.c.jobs, workers.c.last_seen_at).where(
        workers.c.stopped_at.is_(None), workers.c.id != worker_id
    )
    latest: dict[str, datetime | None] = dict.fromkeys(keys)
    for row in conn.execute(others):
        for job in row.jobs or ():
            key = job["key"]
            if key in latest:
                at = latest[key]
                latest[key] = row.last_seen_at if at is None else max(at, row.last_seen_at)
    grouped: dict[datetime | None, list[str]] = {}
    for key, at in sorted(latest.items()):
        grouped.setdefault(at, []).append(key)
    for at, same in grouped.items():
        conn.execute(update(jobs).where(jobs.c.key.in_(same)).values(served_at=at))
