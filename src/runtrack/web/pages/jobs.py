"""One job (``/jobs/{key}``): its state, watermark and checkpoint, what it
owes (carried items and slices), and charts of its recent runs' durations and
outcomes (server-drawn SVG)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from runtrack.errors import InvalidInput, JobNotFound
from runtrack.models import ACTIVE, Carried, CarriedItem, CarriedSlice, CarryState, JobState
from runtrack.notify.config import redact
from runtrack.waiting import queue_of
from runtrack.web.pages.charts import duration_chart, outcome_chart
from runtrack.web.pages.formatting import clock
from runtrack.web.pages.overview import job_row
from runtrack.web.pages.templating import ledger_of, live_seconds, render
from runtrack.workers import on_wall_clock

__all__ = ["job_page_with", "router"]

router = APIRouter(include_in_schema=False)

#: Runs drawn in the charts: one index range of (job_key, id) with a LIMIT.
CHARTED = 200
LATEST = 20
#: Entries a job owes listed on its page (``runtrack carried JOB`` lists all).
OWED_SHOWN = 100


@router.get("/jobs/{key:path}", name="dashboard_job")
def job_page(request: Request, key: str) -> Response:
    """A job's state and history."""
    return job_page_with(request, key, ledger_of(request).now())


def job_page_with(
    request: Request, key: str, now: datetime, *, error: str | None = None, status_code: int = 200
) -> Response:
    """The job's page, with an error above it (a refused form of it)."""
    ledger = ledger_of(request)
    try:
        state = ledger.job_state(key)
    except (InvalidInput, JobNotFound):
        context = {
            "title": "Job not found",
            "nav": "overview",
            "message": f"No job has key {key!r}. A job appears with its first run.",
        }
        return render(request, "not_found.html", context, now=now, status_code=404)
    return _page(request, state, now, error, status_code)


def _owed(carried: Carried) -> dict[str, Any]:
    """What the job owes, for its page: owed and given-up entries, oldest first."""
    entries: list[CarriedItem | CarriedSlice] = [*carried.items, *carried.slices]
    entries.sort(key=lambda entry: entry.id)
    owed = [e for e in entries if e.state is CarryState.OWED]
    given_up = [e for e in entries if e.state is CarryState.GIVEN_UP]
    return {
        "owed": owed[:OWED_SHOWN],
        "owed_count": len(owed),
        "given_up": given_up[:OWED_SHOWN],
        "given_up_count": len(given_up),
    }


INCIDENTS_SHOWN = 20
BACKFILLS_SHOWN = 10


def _local(instant: datetime | None, tz: str | None) -> str:
    """``instant`` written once: on the wall clock of the schedule's zone
    (``2026-12-07 02:30:00 Europe/Madrid``) when it has one other than UTC,
    else as every other time of the page is (``2026-12-07 01:30:00 UTC``)."""
    local = on_wall_clock(instant, tz)
    if local is None:
        return ""
    if str(local.tzinfo) == "UTC":  # no zone, UTC, or a zone this machine does not know
        return clock(local)
    return local.strftime(f"%Y-%m-%d %H:%M:%S {tz}")


def _page(
    request: Request, state: JobState, now: datetime, error: str | None, status_code: int
) -> Response:
    ledger, job = ledger_of(request), state.job
    recent = ledger.recent_runs_of_jobs([job.key], limit=CHARTED)[job.key]
    active = ledger.active_runs(job.key)
    expect = ledger.expectations(job.key).get(job.key)
    incidents = ledger.incidents(job.key, limit=INCIDENTS_SHOWN)
    context: dict[str, Any] = {
        "title": job.key,
        "nav": "overview",
        "row": job_row(
            state,
            ledger.recent_outcomes([job.key]).get(job.key, []),
            active,
            now,
            expect.success_within if expect else None,
        ),
        # Issue 18: what the job promises, and its incidents.
        "expect": expect,
        "incidents": incidents,
        "deliveries": ledger.deliveries([i.id for i in incidents]) if incidents else [],
        "redact": redact,
        # Issue 17: the next tick on the schedule's zone clock.
        "next_due_local": _local(job.next_due_at, job.schedule_tz),
        "active": active,
        "latest": ledger.list_runs(job=job.key, limit=LATEST).items,
        "duration_chart": duration_chart(recent),
        "outcome_chart": outcome_chart(recent, now),
        "charted": len(recent),
        "live": True,
        "live_seconds": live_seconds(any(run.status in ACTIVE for run in active)),
        **_owed(ledger.carried(job.key)),
        # Issue 17: the forms (run now, backfill), the queue and the backfills.
        "error": error,
        "queue": queue_of(ledger, job.key, job.provider, now),
        "backfills": ledger.backfills(job=job.key, limit=BACKFILLS_SHOWN),
    }
    return render(request, "job.html", context, now=now, status_code=status_code)
