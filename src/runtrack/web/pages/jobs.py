"""One job (``/jobs/{key}``): its state, watermark and checkpoint, and charts
of its recent runs' durations and outcomes (server-drawn SVG)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from runtrack.errors import InvalidInput, JobNotFound
from runtrack.models import ACTIVE, JobState
from runtrack.web.pages.charts import duration_chart, outcome_chart
from runtrack.web.pages.overview import job_row
from runtrack.web.pages.signin import deny_reader
from runtrack.web.pages.templating import ledger_of, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: Runs drawn in the charts: one index range of (job_key, id) with a LIMIT.
CHARTED = 200
LATEST = 20


@router.get("/jobs/{key:path}", name="dashboard_job")
def job_page(request: Request, key: str) -> Response:
    """A job's state and history."""
    ledger = ledger_of(request)
    now = ledger.now()
    if (denied := deny_reader(request, now)) is not None:
        return denied
    try:
        state = ledger.job_state(key)
    except (InvalidInput, JobNotFound):
        context = {
            "title": "Job not found",
            "nav": "overview",
            "message": f"No job has key {key!r}. A job appears with its first run.",
        }
        return render(request, "not_found.html", context, now=now, status_code=404)
    return _page(request, state, now)


def _page(request: Request, state: JobState, now: datetime) -> Response:
    ledger, job = ledger_of(request), state.job
    recent = ledger.recent_runs_of_jobs([job.key], limit=CHARTED)[job.key]
    active = ledger.active_runs(job.key)
    context: dict[str, Any] = {
        "title": job.key,
        "nav": "overview",
        "row": job_row(state, ledger.recent_outcomes([job.key]).get(job.key, []), active, now),
        "active": active,
        "latest": ledger.list_runs(job=job.key, limit=LATEST).items,
        "duration_chart": duration_chart(recent),
        "outcome_chart": outcome_chart(recent, now),
        "charted": len(recent),
        "live": any(run.status in ACTIVE for run in active),
    }
    return render(request, "job.html", context, now=now)
