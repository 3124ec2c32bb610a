"""The overview (``/``): every job at a glance, the counts that need action,
and the latest failures.

The page reads the jobs table (its last-run pointers, failure streak and the
strip of its last 30 finished runs that finalization keeps there), the active
runs (a range of the status index) and the failures of the day: it never
reads the runs table's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from fastapi import APIRouter, Request
from fastapi.responses import Response

from runtrack.models import JobRecord, JobState, PauseRecord, RunOutcome, RunRecord, RunStatus
from runtrack.web.pages.formatting import ago, span
from runtrack.web.pages.signin import deny_reader
from runtrack.web.pages.templating import ledger_of, render

__all__ = ["JobRow", "active_by_job", "cadence", "job_row", "router", "strip_label"]

router = APIRouter(include_in_schema=False)

RECENT_FAILURES = 8
#: A job is late when its last success is older than this many of its usual
#: gaps between runs: one run may be in progress, a second one is missing.
LATE_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job as the overview shows it."""

    job: JobRecord
    strip: tuple[RunOutcome | RunRecord, ...]  # finished runs, then active ones, oldest first
    pause: PauseRecord | None
    cadence: timedelta | None
    late: bool
    late_reason: str
    active: str | None  # "running" or "pending" while the job has active runs
    cells: tuple[tuple[int, str, str], ...]  # the strip: (run id, status, label)


def cadence(finished: Sequence[RunOutcome]) -> timedelta | None:
    """The job's observed schedule: the median gap between its recent
    finishes (``None`` with fewer than three runs to judge by)."""
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
) -> JobRow:
    """Judge a job from its state, its strip of finished runs (newest first)
    and its active runs (oldest first)."""
    job, every = state.job, cadence(finished)
    late, reason = False, ""
    if job.last_status is not None and job.last_success_at is None:
        late, reason = True, "no run of this job has succeeded yet"
    elif job.last_success_at is not None and every is not None:
        age = now - job.last_success_at
        if age > every * LATE_FACTOR:
            late = True
            reason = f"no success for {span(age)}; this job runs about every {span(every)}"
    statuses = {run.status for run in active}
    shown = (RunStatus.RUNNING, RunStatus.PENDING)
    badge = next((s.value for s in shown if s in statuses), None)
    strip: tuple[RunOutcome | RunRecord, ...] = (*reversed(finished), *active)
    cells = tuple((run.id, run.status.value, strip_label(run, now)) for run in strip)
    return JobRow(job, strip, state.pause, every, late, reason, badge, cells)


def strip_label(run: RunOutcome | RunRecord, now: datetime) -> str:
    """The tooltip of one strip cell: ``run 12: failed, finished 3 h ago, took
    2 min`` or ``run 13: running for 4 min``."""
    if isinstance(run, RunRecord):
        return f"run {run.id}: {run.status.value} for {span(now - run.created_at)}"
    took = f", took {span(run.duration)}" if run.duration is not None else ""
    return f"run {run.id}: {run.status.value}, finished {ago(run.finished_at, now)}{took}"


def active_by_job(active: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    """Active runs grouped by job, oldest first."""
    found: dict[str, list[RunRecord]] = {}
    for run in active:
        found.setdefault(run.job, []).append(run)
    return found


@router.get("/", name="dashboard_overview")
def overview(request: Request) -> Response:
    """Every job with its health, the counts that need action, the latest failures."""
    ledger = ledger_of(request)
    now = ledger.now()
    if (denied := deny_reader(request, now)) is not None:
        return denied
    states = ledger.job_states()
    strips = ledger.recent_outcomes()
    active = active_by_job(ledger.active_runs())
    rows = [
        job_row(state, strips.get(state.job.key, []), active.get(state.job.key, []), now)
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
