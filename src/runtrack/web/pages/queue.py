"""The queue on the dashboard (issue 17): "Run now" and "Backfill" on a job's
page, "Re-run" on a run's page, the backfills and each one's progress.

Every button is a POST form from this site only, acting for a session
signed in with the API token (:func:`runtrack.web.pages.session.refusal`),
as cancel and resume do; it answers with a redirect to what it queued.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from runtrack import inputs
from runtrack.errors import BackfillNotFound, InvalidInput, JobNotFound, RunNotFound
from runtrack.web.pages import session
from runtrack.web.pages.formatting import quoted
from runtrack.web.pages.jobs import job_page_with
from runtrack.web.pages.signin import refused
from runtrack.web.pages.templating import ledger_of, live_seconds, render, settings_of

__all__ = ["parse_params", "router"]

router = APIRouter(include_in_schema=False)

BY = "dashboard"
#: Windows listed on a backfill's page (its progress counts them all).
WINDOWS_SHOWN = 1000
NOTICES = {
    "queued": "Queued: a worker serving this job picks it up.",
    "resumed": "Resumed: its failed, cancelled and missing windows are queued again.",
    "cancelled": "Cancelled: its queued windows will not run (running ones finish).",
}


def parse_params(text: str) -> dict[str, Any] | None:
    """``k=v`` lines (blank lines skipped) as params, each value JSON if it
    is JSON (``2``, ``true``, ``[1,2]``), else text: the CLI's ``--param`` rule."""
    params: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, raw = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput("params", f"line {number} {line.strip()!r} is not k=v", "k=v lines")
        if key in params:
            raise InvalidInput("params", f"{key!r} is given twice", "each key once")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw.strip()
    return params or None


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _id(text: str) -> int | None:
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    return int(text) if 0 < int(text) < 2**63 else None


def _not_found(request: Request, now: datetime, message: str) -> Response:
    context = {"title": "Not found", "nav": "backfills", "message": message}
    return render(request, "not_found.html", context, now=now, status_code=404)


def _refused_or_none(request: Request, now: datetime, outcome: str, back: str) -> Response | None:
    ledger = ledger_of(request)
    why = session.refusal(request, settings_of(request), ledger, now, outcome)
    return refused(request, now, why, back=back) if why is not None else None


def _job_error(request: Request, key: str, now: datetime, error: str) -> Response:
    """The job's page again, with what was wrong."""
    return job_page_with(request, key, now, error=error, status_code=422)


# -- run now, backfill, re-run -------------------------------------------------------


@router.post("/jobs/{key:path}/trigger", name="dashboard_trigger")
def run_now(request: Request, key: str, params: Annotated[str, Form()] = "") -> Response:
    """Queue a run of the job now, with the form's params."""
    now = ledger_of(request).now()
    back = f"{_base(request)}/jobs/{quoted(key)}"
    if (answer := _refused_or_none(request, now, "Not queued", back)) is not None:
        return answer
    try:
        run = ledger_of(request).trigger(key, params=parse_params(params), by=BY)
    except JobNotFound:
        return _not_found(request, now, f"No job has key {key!r}.")
    except InvalidInput as exc:
        return _job_error(request, key, now, f"Not queued: {exc}")
    return RedirectResponse(f"{_base(request)}/runs/{run.id}?done=queued", status_code=303)


@router.post("/jobs/{key:path}/backfill", name="dashboard_backfill")
def backfill(
    request: Request,
    key: str,
    start: Annotated[str, Form()] = "",
    end: Annotated[str, Form()] = "",
    every: Annotated[str, Form()] = "1d",
    max_parallel: Annotated[str, Form()] = "",
) -> Response:
    """Backfill ``[start, end)`` of the job in windows of ``every``."""
    ledger = ledger_of(request)
    now = ledger.now()
    back = f"{_base(request)}/jobs/{quoted(key)}"
    if (answer := _refused_or_none(request, now, "Not queued", back)) is not None:
        return answer
    try:
        first = inputs.time_or_age("from", start, now)
        last = inputs.time_or_age("to", end, now)
        cap = None
        if max_parallel.strip():
            if not max_parallel.strip().isdigit():
                raise InvalidInput("max_parallel", f"got {max_parallel!r}", "a whole number >= 1")
            cap = int(max_parallel.strip())
        record = ledger.backfill(key, first, last, every=every, by=BY, max_parallel=cap)
    except JobNotFound:
        return _not_found(request, now, f"No job has key {key!r}.")
    except InvalidInput as exc:
        return _job_error(request, key, now, f"Not queued: {exc}")
    return RedirectResponse(f"{_base(request)}/backfills/{record.id}?done=queued", status_code=303)


@router.post("/runs/{run_id}/rerun", name="dashboard_rerun")
def rerun(request: Request, run_id: str) -> Response:
    """Queue a run of the same job with the same params and window."""
    now = ledger_of(request).now()
    back = f"{_base(request)}/runs/{run_id}"
    if (answer := _refused_or_none(request, now, "Not queued", back)) is not None:
        return answer
    number = _id(run_id)
    try:
        if number is None:
            raise RunNotFound(0)
        run = ledger_of(request).rerun(number, by=BY)
    except RunNotFound:
        return _not_found(request, now, f"No run has id {run_id!r}.")
    return RedirectResponse(f"{_base(request)}/runs/{run.id}?done=queued", status_code=303)


# -- backfills -----------------------------------------------------------------------


@router.get("/backfills", name="dashboard_backfills")
def backfills_page(request: Request) -> Response:
    """Every backfill, newest first, with its progress."""
    ledger = ledger_of(request)
    now = ledger.now()
    found = ledger.backfills(limit=100)
    context: dict[str, Any] = {
        "title": "Backfills",
        "nav": "backfills",
        "backfills": found,
        "live": True,
        "live_seconds": live_seconds(any(b.progress.running for b in found)),
    }
    return render(request, "backfills.html", context, now=now)


@router.get("/backfills/{backfill_id}", name="dashboard_backfill_page")
def backfill_page(request: Request, backfill_id: str) -> Response:
    """A backfill's progress and each of its windows."""
    ledger = ledger_of(request)
    now = ledger.now()
    number = _id(backfill_id)
    try:
        if number is None:
            raise BackfillNotFound(0)
        record = ledger.get_backfill(number)
        windows = ledger.backfill_windows(number)
    except BackfillNotFound:
        return _not_found(request, now, f"No backfill has id {backfill_id!r}.")
    context: dict[str, Any] = {
        "title": f"Backfill {record.id}",
        "nav": "backfills",
        "b": record,
        "windows": windows[:WINDOWS_SHOWN],
        "window_count": len(windows),
        "notice": NOTICES.get(request.query_params.get("done", "")),
        "live": True,
        "live_seconds": live_seconds(bool(record.progress.running or record.progress.queued)),
    }
    return render(request, "backfill.html", context, now=now)


@router.post("/backfills/{backfill_id}/{action}", name="dashboard_backfill_action")
def backfill_action(request: Request, backfill_id: str, action: str) -> Response:
    """Resume or cancel a backfill."""
    ledger = ledger_of(request)
    now = ledger.now()
    back = f"{_base(request)}/backfills/{backfill_id}"
    outcome = "Not resumed" if action == "resume" else "Not cancelled"
    if (answer := _refused_or_none(request, now, outcome, back)) is not None:
        return answer
    number = _id(backfill_id)
    if number is None or action not in ("resume", "cancel"):
        return _not_found(request, now, f"No backfill action {backfill_id}/{action}.")
    try:
        if action == "resume":
            ledger.resume_backfill(number, by=BY)
        else:
            ledger.cancel_backfill(number, by=BY)
    except BackfillNotFound:
        return _not_found(request, now, f"No backfill has id {backfill_id!r}.")
    done = "resumed" if action == "resume" else "cancelled"
    return RedirectResponse(f"{back}?done={done}", status_code=303)
