"""Workers you can see (issue 17): each runner process registers itself (id,
host, pid, version, concurrency, the jobs it serves with their schedules) and
heartbeats its row while it lives; a graceful stop marks it stopped, and a
worker not seen for ``stale_after`` (the threshold that reaps its runs) is
dead. The pending runs of a job a live worker serves (listed in its row) wait
for it instead of expiring: the reaper reads the live workers' rows when runs
are past the pending TTL; a heartbeat writes the worker's own row only, never
a job's. What a worker is running is read from ``runs.worker_id``.

Worker rows are history of a kind: retention deletes the rows of workers gone
for :data:`KEEP_GONE` (and at least a day), however long runs are kept.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from importlib import metadata
from zoneinfo import ZoneInfo

from runtrack import inputs
from runtrack.clock import Clock
from runtrack.errors import InvalidInput, describe
from runtrack.store.workers import WorkerRow, WorkerStore

__all__ = [
    "KEEP_GONE",
    "WorkerJob",
    "WorkerRecord",
    "WorkerRun",
    "WorkerState",
    "Workers",
    "forget_gone_workers",
    "live_since",
    "on_wall_clock",
]

#: How long the rows of stopped and dead workers are kept.
KEEP_GONE = timedelta(days=7)
MIN_KEEP = timedelta(days=1)


def _version() -> str:
    try:
        return metadata.version("runtrack")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


VERSION = _version()


def live_since(now: datetime, stale_after: timedelta) -> datetime:
    """The one definition of a live worker: not stopped, and last seen at or
    after this instant (``stale_after`` ago). The Workers page, the queue's
    waiting reasons and the pending TTL (a run whose job a live worker serves
    does not expire, :meth:`runtrack.reaper.Reaper.reap`) all read it."""
    return now - stale_after


class WorkerState(StrEnum):
    LIVE = "live"
    STOPPED = "stopped"  # stopped gracefully
    DEAD = "dead"  # not seen for stale_after: killed, frozen or cut off


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """A job a worker serves: its key, schedule and IANA zone (``None``: UTC)."""

    key: str
    schedule: str
    tz: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerRun:
    """A run a worker is running."""

    run_id: int
    job: str
    started_at: datetime | None
    heartbeat_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A registered runner process, and what it is running now."""

    id: str
    host: str
    pid: int
    version: str
    concurrency: int
    jobs: tuple[WorkerJob, ...]
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    state: WorkerState
    running: tuple[WorkerRun, ...]


class Workers:
    """The ledger's part for worker rows."""

    def __init__(self, rows: WorkerStore, clock: Clock, stale_after: timedelta, host: str) -> None:
        self.rows = rows
        self.clock = clock
        self.stale_after = stale_after
        self.host = host

    def register_worker(
        self,
        worker_id: str,
        jobs: Sequence[WorkerJob],
        *,
        concurrency: int = 1,
        providers: dict[str, str] | None = None,
    ) -> None:
        """Register (or restart) this process as worker ``worker_id`` serving
        ``jobs``; each job's row records its schedule (``providers`` names the
        provider of jobs that are new to the database)."""
        inputs.key("worker_id", worker_id)
        inputs.positive_int("concurrency", concurrency, limit=10_000)
        if not isinstance(jobs, Sequence) or not all(isinstance(j, WorkerJob) for j in jobs):
            raise InvalidInput("jobs", f"got {describe(jobs)}", "a list of WorkerJob")
        if providers is not None and not isinstance(providers, dict):
            raise InvalidInput("providers", f"got {describe(providers)}", "a dict job -> provider")
        for job, provider in (providers or {}).items():
            inputs.key("job", job)
            inputs.key("provider", provider)
        served = [{"key": j.key, "schedule": j.schedule, "tz": j.tz} for j in jobs]
        values = {
            "id": worker_id,
            "host": self.host,
            "pid": os.getpid(),
            "version": VERSION,
            "concurrency": concurrency,
            "jobs": served,
        }
        self.rows.register(values, dict(providers or {}), self.clock.now())

    def worker_seen(self, worker_id: str) -> bool:
        """Heartbeat the worker's row; ``False`` if it has none (register again)."""
        return self.rows.seen(inputs.key("worker_id", worker_id), self.clock.now())

    def worker_stopped(self, worker_id: str) -> None:
        """Mark the worker stopped (its graceful shutdown is over)."""
        self.rows.stopped(inputs.key("worker_id", worker_id), self.clock.now())

    def workers(self, *, recent: timedelta | float | str | None = "1d") -> list[WorkerRecord]:
        """Live workers and those gone (stopped or dead) within ``recent``
        (``None``: every row kept), most recently started first, each with
        the runs it is running."""
        now = self.clock.now()
        since = None
        if recent is not None:
            since = now - inputs.duration("recent", recent, limit=inputs.MAX_DURATION)
            since = min(since, now - self.stale_after)  # a live worker is always listed
        rows = self.rows.listing(since)
        running: dict[str, list[WorkerRun]] = {}
        for run in self.rows.running([row.id for row in rows]):
            running.setdefault(run.worker_id, []).append(
                WorkerRun(run.id, run.job_key, run.started_at, run.heartbeat_at)
            )
        return [self._record(row, now, tuple(running.get(row.id, ()))) for row in rows]

    def _record(
        self, row: WorkerRow, now: datetime, running: tuple[WorkerRun, ...]
    ) -> WorkerRecord:
        last_seen = row.last_seen_at
        stopped = row.stopped_at
        if stopped is not None:
            state = WorkerState.STOPPED
        elif last_seen < live_since(now, self.stale_after):
            state = WorkerState.DEAD
        else:
            state = WorkerState.LIVE
        return WorkerRecord(
            id=row.id,
            host=row.host,
            pid=row.pid,
            version=row.version,
            concurrency=row.concurrency,
            jobs=tuple(WorkerJob(j["key"], j["schedule"], j.get("tz")) for j in row.jobs or ()),
            started_at=row.started_at,
            last_seen_at=last_seen,
            stopped_at=stopped,
            state=state,
            running=running,
        )


def forget_gone_workers(rows: WorkerStore, now: datetime, cutoff: datetime) -> int:
    """Retention: delete the rows of workers not seen since the later of
    ``cutoff`` and :data:`KEEP_GONE` ago, but never one seen within a day."""
    seen_before = min(max(cutoff, now - KEEP_GONE), now - MIN_KEEP)
    return rows.prune(seen_before)


def on_wall_clock(instant: datetime | None, tz: str | None) -> datetime | None:
    """``instant`` on the wall clock of the IANA zone ``tz`` (``None``: UTC),
    as a job's schedule reads it; a zone this machine does not know reads UTC."""
    if instant is None:
        return None
    try:
        return instant.astimezone(ZoneInfo(tz or "UTC"))
    except (LookupError, ValueError):
        return instant.astimezone(ZoneInfo("UTC"))
