"""What an operator asks about the ledger as a whole: the state of each job
and provider, the tallies behind the metrics, and whether the ledger is
healthy. Read-only; every query here costs what the number of jobs, providers
or active runs costs, never what the history costs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from runtrack.errors import DatabaseUnavailable, JobNotFound
from runtrack.models import JobState, JobTally, PauseRecord, ProviderState, RunStatus
from runtrack.store.history import HistoryStore
from runtrack.store.jobs import JobStore
from runtrack.store.runs import RunStore

__all__ = ["Health", "Overview"]

log = logging.getLogger("runtrack")


@dataclass(frozen=True, slots=True)
class Health:
    """Whether the ledger is fit to serve: the database answers, and no stale
    run is waiting for a reaper that has stopped running."""

    healthy: bool
    database: bool
    stale_runs: int | None
    last_reap_at: datetime | None
    checked_at: datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class Overview:
    runs: RunStore
    jobs: JobStore
    history: HistoryStore
    stale_after: timedelta

    def _pauses(self, now: datetime) -> dict[str, PauseRecord]:
        return {p.provider: p for p in self.history.active_pauses(now)}

    def job_states(self, now: datetime, provider: str | None = None) -> list[JobState]:
        """Every job (of ``provider``) with its active run count and its
        provider's pause, ordered by key."""
        pauses = self._pauses(now)
        active = self.runs.active_counts()
        states = []
        for job in self.jobs.list_jobs(provider):
            count, running = active.get(job.key, (0, 0))
            states.append(JobState(job, count, pauses.get(job.provider or ""), running))
        return states

    def job_state(self, now: datetime, key: str) -> JobState:
        job = self.jobs.get_job(key)
        if job is None:
            raise JobNotFound(key)
        pause = self.history.active_pauses(now, job.provider) if job.provider else []
        active = self.runs.active_runs(key)
        running = sum(run.status is RunStatus.RUNNING for run in active)
        return JobState(job, len(active), pause[0] if pause else None, running)

    def providers(self, now: datetime) -> list[ProviderState]:
        """Providers named by a job or by a pause in force, ordered by name."""
        pauses = self._pauses(now)
        counts = self.jobs.provider_job_counts()
        names = sorted(set(counts) | set(pauses))
        return [ProviderState(name, counts.get(name, 0), pauses.get(name)) for name in names]

    def tallies(self) -> list[JobTally]:
        return self.history.job_tallies()

    def health(self, now: Callable[[], datetime]) -> Health:
        """Healthy when the database answers and no stale run is waiting for a
        reaper that has not run within the stale threshold (stale runs with a
        live reaper are reaped on its next pass; they are not a fault)."""
        try:
            at = now()
            stale = self.runs.count_stale(at - self.stale_after)
            last = self.history.last_maintenance("reap")
        except DatabaseUnavailable as exc:
            log.warning("health check: database unavailable: %s", exc)
            return Health(False, False, None, None, None, "the database is unreachable")
        last_at = last[0] if last else None
        reaper_alive = last_at is not None and at - last_at <= self.stale_after
        if stale and not reaper_alive:
            when = last_at.isoformat() if last_at else "never"
            reason = f"{stale} stale run(s) and the reaper last ran: {when}"
            return Health(False, True, stale, last_at, at, reason)
        return Health(True, True, stale, last_at, at, "ok")
