"""The overview (``/``): every job at a glance, the counts that need action,
and the latest failures.

The page reads the jobs table (its last-run pointers, failure streak and the
strip of its last 30 finished runs that finalization keeps there), the active
runs (a range of the status index) and the failures of the day: it never
reads the runs table's history.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from runtrack.alerts import IncidentRecord
from runtrack.errors import RunNotFound
from runtrack.expectations import Expect
from runtrack.health import HealthState, JobHealth, judge, outcome_label
from runtrack.ledger import Ledger
from runtrack.models import JobRecord, JobState, PauseRecord, RunOutcome, RunRecord, RunStatus
from runtrack.web.pages.formatting import ago, span
from runtrack.web.pages.session import session_of
from runtrack.web.pages.templating import ledger_of, live_seconds, render, settings_of

__all__ = [
    "JobRow",
    "OverviewCache",
    "active_by_job",
    "cadence",
    "job_row",
    "router",
    "strip_label",
]

router = APIRouter(include_in_schema=False)

RECENT_FAILURES = 8


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job as the overview shows it."""

    job: JobRecord
    strip: tuple[RunOutcome | RunRecord, ...]  # finished runs, then active ones, oldest first
    pause: PauseRecord | None
    cadence: timedelta | None
    active: str | None  # "running" or "pending" while the job has active runs
    cells: tuple[tuple[int, str, str], ...]  # the strip: (run id, status, label)
    #: Issue 18: the job's health (healthy, running, retrying, failing, late, paused).
    health: JobHealth

    # Late is the health's verdict (its expectation, or its schedule's
    # default): the row never says late where the health says otherwise.
    @property
    def late(self) -> bool:
        return self.health.state is HealthState.LATE

    @property
    def late_reason(self) -> str:
        return self.health.reason if self.late else ""


def cadence(finished: Sequence[RunOutcome]) -> timedelta | None:
    """The job's observed rhythm, shown beside its last success: the median
    gap between its recent finishes (``None`` with fewer than three runs to
    judge by). Not a lateness rule: a trigger or a backfill shrinks it."""
    times = sorted(run.finished_at for run in finished)
    gaps = sorted(later - earlier for earlier, later in pairwise(times))
    if len(gaps) < 2:
        return None
    return gaps[len(gaps) // 2]


def job_row(
    state: JobState,
    finished: Sequence[RunOutcome],
    active: Sequence[RunRecord],
    now: datetime,
    success_within: timedelta | None = None,
) -> JobRow:
    """Judge a job from its state, its strip of finished runs (newest first)
    and its active runs (oldest first)."""
    job = state.job
    statuses = {run.status for run in active}
    shown = (RunStatus.RUNNING, RunStatus.PENDING)
    badge = next((s.value for s in shown if s in statuses), None)
    strip: tuple[RunOutcome | RunRecord, ...] = (*reversed(finished), *active)
    cells = tuple((run.id, _cell_class(run), strip_label(run, now)) for run in strip)
    health = judge(state, finished, now=now, success_within=success_within)
    return JobRow(job, strip, state.pause, cadence(finished), badge, cells, health)


def _cell_class(run: RunOutcome | RunRecord) -> str:
    """A strip cell's class: its status, or ``retried`` / ``rate_limited``
    for a failed attempt that is not a failure for good (issue 18)."""
    note = run.note if isinstance(run, RunOutcome) else None
    return note or run.status.value


def strip_label(run: RunOutcome | RunRecord, now: datetime) -> str:
    """The tooltip of one strip cell: ``run 12: failed, finished 3 h ago, took
    2 min`` or ``run 13: running for 4 min``."""
    if isinstance(run, RunRecord):
        return f"run {run.id}: {run.status.value} for {span(now - run.created_at)}"
    took = f", took {span(run.duration)}" if run.duration is not None else ""
    what = outcome_label(run.status, run.note)
    return f"run {run.id}: {what}, finished {ago(run.finished_at, now)}{took}"


def active_by_job(active: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    """Active runs grouped by job, oldest first."""
    found: dict[str, list[RunRecord]] = {}
    for run in active:
        found.setdefault(run.job, []).append(run)
    return found


class OverviewCache:
    """The overview's data for visitors without a session, built at most once
    per ``ttl`` seconds however many of them refresh it (a wall screen or an
    open tab refreshes every few seconds, and the page reads every job)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, datetime, dict[str, Any]] | None = None

    def get(
        self, build: Callable[[], tuple[datetime, dict[str, Any]]]
    ) -> tuple[datetime, dict[str, Any]]:
        """The cached ``(now, context)``, or a fresh one from ``build()``."""
        with self._lock:
            cached = self._cached
            if cached is not None and time.monotonic() - cached[0] < self.ttl:
                return cached[1], cached[2]
            now, context = build()
            self._cached = (time.monotonic(), now, context)
            return now, context


@router.get("/", name="dashboard_overview")
def overview(request: Request) -> Response:
    """Every job with its health, the counts that need action, the latest failures."""
    ledger = ledger_of(request)
    if session_of(request, settings_of(request), ledger, ledger.now()) is None:
        cache: OverviewCache = request.app.state.overview_cache
        now, context = cache.get(lambda: _context(ledger))
    else:
        now, context = _context(ledger)
    return render(request, "overview.html", context, now=now)


def _context(ledger: Ledger) -> tuple[datetime, dict[str, Any]]:
    now = ledger.now()
    states = ledger.job_states()
    strips = ledger.recent_outcomes()
    active = active_by_job(ledger.active_runs())
    expects = ledger.expectations()  # issue 18: "late" by the job's expectation
    rows = [
        job_row(
            state,
            strips.get(state.job.key, []),
            active.get(state.job.key, []),
            now,
            _within(expects.get(state.job.key)),
        )
        for state in states
    ]
    since = now - timedelta(hours=24)
    statuses = [run.status for runs in active.values() for run in runs]
    counts = {
        "running": statuses.count(RunStatus.RUNNING),
        "pending": statuses.count(RunStatus.PENDING),
        "stale": ledger.count_stale(),
        "failed_24h": ledger.count_started(RunStatus.FAILED, since=since),
    }
    # Issue 18: "failed for good" apart from "failed, retried" (and rate limits).
    counts["failed_for_good"], counts["failed_retried"] = ledger.count_failed(since)
    return now, {
        "title": "Overview",
        "nav": "overview",
        "rows": rows,
        "providers": len({state.job.provider for state in states if state.job.provider}),
        "paused": len(ledger.pauses()),
        "counts": counts,
        "since_24h": since,
        "failures": ledger.list_runs(status=RunStatus.FAILED, limit=RECENT_FAILURES).items,
        "incidents": open_incidents(ledger),
        "live": True,
        "live_seconds": live_seconds(counts["running"] + counts["pending"] > 0),
    }


def _within(expect: Expect | None) -> timedelta | None:
    return expect.success_within if expect is not None else None


def open_incidents(ledger: Ledger) -> list[tuple[IncidentRecord, RunRecord | None]]:
    """Open incidents, oldest first, each with the run that broke it (else
    its job's last run), for the last error: what the overview shows first
    (issue 18)."""
    found = sorted(ledger.incidents(open_only=True, limit=500), key=lambda i: i.id)
    last = {s.job.key: s.job.last_run_id for s in ledger.job_states()} if found else {}
    return [(i, _run_or_none(ledger, i.run_id or last.get(i.job))) for i in found]


def _run_or_none(ledger: Ledger, run_id: int | None) -> RunRecord | None:
    if run_id is None:
        return None
    try:
        return ledger.get_run(run_id)
    except RunNotFound:  # pruned since
        return None
