"""The overview (``/``): every job at a glance, the counts that need action,
and the latest failures.

The page reads the jobs table (its last-run pointers and failure streak), one
statement per 100 jobs for their last 30 runs (index ranges with a LIMIT), and
counts on the status indexes: it never scans the runs table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from fastapi import APIRouter, Request
from fastapi.responses import Response

from runtrack.models import ACTIVE, JobRecord, JobState, PauseRecord, RunBrief, RunStatus
from runtrack.web.pages.formatting import ago, span
from runtrack.web.pages.signin import deny_reader
from runtrack.web.pages.templating import ledger_of, render

__all__ = ["JobRow", "cadence", "job_row", "router", "strip_label"]

router = APIRouter(include_in_schema=False)

STRIP = 30
RECENT_FAILURES = 8
#: A job is late when its last success is older than this many of its usual
#: gaps between runs: one run may be in progress, a second one is missing.
LATE_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job as the overview shows it."""

    job: JobRecord
    strip: tuple[RunBrief, ...]  # oldest first, as the eye reads
    pause: PauseRecord | None
    cadence: timedelta | None
    late: bool
    late_reason: str
    active: str | None
    cells: tuple[tuple[int, str, str], ...]  # the strip: (run id, status, label)


def cadence(runs: Sequence[RunBrief]) -> timedelta | None:
    """The job's observed schedule: the median gap between its recent runs
    (``None`` with fewer than three runs to judge by)."""
    times = sorted(run.created_at for run in runs)
    gaps = sorted(later - earlier for earlier, later in pairwise(times))
    if len(gaps) < 2:
        return None
    return gaps[len(gaps) // 2]


def job_row(state: JobState, recent: Sequence[RunBrief], now: datetime) -> JobRow:
    """Judge a job from its state and its recent runs (newest first)."""
    job, every = state.job, cadence(recent)
    late, reason = False, ""
    if job.last_status is not None and job.last_success_at is None:
        late, reason = True, "no run of this job has succeeded yet"
    elif job.last_success_at is not None and every is not None:
        age = now - job.last_success_at
        if age > every * LATE_FACTOR:
            late = True
            reason = f"no success for {span(age)}; this job runs about every {span(every)}"
    newest = recent[0].status if recent else None
    active = newest.value if state.active_runs and newest in ACTIVE else None
    strip = tuple(reversed(recent))
    cells = tuple((run.id, run.status.value, strip_label(run, now)) for run in strip)
    return JobRow(job, strip, state.pause, every, late, reason, active, cells)


def strip_label(run: RunBrief, now: datetime) -> str:
    """The tooltip of one strip cell: ``run 12: failed, 3 h ago, took 2 min``."""
    took = f", took {span(run.duration)}" if run.duration is not None else ""
    return f"run {run.id}: {run.status.value}, {ago(run.created_at, now)}{took}"


@router.get("/", name="dashboard_overview")
def overview(request: Request) -> Response:
    """Every job with its health, the counts that need action, the latest failures."""
    ledger = ledger_of(request)
    now = ledger.now()
    if (denied := deny_reader(request, now)) is not None:
        return denied
    states = ledger.job_states()
    recent = ledger.recent_runs_of_jobs([state.job.key for state in states], limit=STRIP)
    rows = [job_row(state, recent[state.job.key], now) for state in states]
    since = now - timedelta(hours=24)
    counts = {
        "running": ledger.count_runs(status=RunStatus.RUNNING),
        "pending": ledger.count_runs(status=RunStatus.PENDING),
        "stale": ledger.count_stale(),
        "failed_24h": ledger.count_started(RunStatus.FAILED, since=since),
    }
    context = {
        "title": "Overview",
        "nav": "overview",
        "rows": rows,
        "providers": len({state.job.provider for state in states if state.job.provider}),
        "paused": len(ledger.pauses()),
        "counts": counts,
        "since_24h": since,
        "failures": ledger.list_runs(status=RunStatus.FAILED, limit=RECENT_FAILURES).items,
        "live": counts["running"] + counts["pending"] > 0,
    }
    return render(request, "overview.html", context, now=now)
