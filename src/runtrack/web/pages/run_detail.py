"""One run (``/runs/{id}``): timeline, progress, counters, window, payloads,
error, items; and the cancel button (``POST /runs/{id}/cancel``).

Cancel needs a session signed in with the API token; it is a POST form from
this site only (see :mod:`runtrack.web.pages.session`) and calls
``Ledger.cancel``, which stops the worker at its next heartbeat.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from runtrack.errors import InvalidInput, RunNotCancellable, RunNotFound
from runtrack.models import ItemStatus, OnPartial, RunRecord, RunStatus
from runtrack.web.pages import session
from runtrack.web.pages.signin import refused
from runtrack.web.pages.templating import ledger_of, render, settings_of

__all__ = ["moves_watermark", "router"]

router = APIRouter(include_in_schema=False)

ITEM_PAGE = 50
GROUPS_SHOWN = 100
NOTICES = {
    "cancel-requested": "Cancel requested: the worker stops at its next heartbeat.",
    "cancelled": "Run cancelled.",
    "queued": "Queued: a worker serving this job picks it up.",  # issue 17
}


def _run_id(text: str) -> int | None:
    # ASCII only: "²".isdigit() is true and int() refuses it; at most 19 digits.
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    return int(text) if 0 < int(text) < 2**63 else None


def _not_found(request: Request, now: datetime, text: str) -> Response:
    context = {"title": "Run not found", "nav": "runs", "message": f"No run has id {text!r}."}
    return render(request, "not_found.html", context, now=now, status_code=404)


def _items(request: Request, run: RunRecord) -> dict[str, Any]:
    """The item table's page and filters (a bad filter is reported, not raised)."""
    params = request.query_params
    status = params.get("item_status", "")
    group = params.get("group", "")
    cursor = params.get("items", "")
    found: dict[str, Any] = {"item_status": status, "group": group, "items_error": None}
    try:
        page = ledger_of(request).list_items(
            run.id,
            status=status or None,
            group=group or None,
            cursor=cursor or None,
            limit=ITEM_PAGE,
        )
        found.update(items=page.items, items_next=page.next_cursor, items_cursor=cursor)
    except InvalidInput as exc:
        found.update(items=[], items_next=None, items_cursor="", items_error=str(exc))
    return found


def _groups(request: Request, run: RunRecord) -> tuple[list[Any], int]:
    # Summed over every item of the run: only for finished runs that used groups.
    if run.groups_found is None or run.is_active:
        return [], 0
    groups = ledger_of(request).group_summary(run.id)
    return groups[:GROUPS_SHOWN], len(groups)


def moves_watermark(run: RunRecord) -> str:
    """The run page's "Moves watermark": whether the run's end moves (or
    moved) its job's watermark to its window's end. ``run.moves_watermark``
    only says whether ending success or partial would; the status says the rest."""
    hold = run.on_partial is OnPartial.HOLD
    if run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        return f"no ({run.status.value} runs never move it)"
    if not run.moves_watermark or (run.window_end is None and not run.is_active):
        return "no (backfill)" if run.backfill_id else "no"
    if run.is_active:
        return "only if it ends success" + ("" if hold else " or partial")
    if run.status is RunStatus.PARTIAL and hold:
        return "no (partial, and the job holds its watermark on a partial run)"
    if run.status is RunStatus.PARTIAL and (run.error_details or {}).get("anomalies"):
        return "yes, unless its volume guard held it (hold_watermark)"
    return "yes"


def _page(
    request: Request,
    run: RunRecord,
    now: datetime,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    ledger = ledger_of(request)
    groups, group_count = _groups(request, run)
    silent = now - run.heartbeat_at if run.heartbeat_at else None
    context: dict[str, Any] = {
        "title": f"Run {run.id}",
        "nav": "runs",
        "run": run,
        "moves_watermark": moves_watermark(run),
        "notice": notice,
        "error": error,
        "groups": groups,
        "group_count": group_count,
        "item_statuses": [s.value for s in ItemStatus],
        "stale": run.is_active and silent is not None and silent > ledger.stale_after,
        "live": run.is_active,
        **_items(request, run),
    }
    if context["items_error"] is not None and status_code == 200:
        status_code = 400  # a bad item filter or cursor, explained above the table
    return render(request, "run.html", context, now=now, status_code=status_code)


@router.get("/runs/{run_id}", name="dashboard_run")
def run_page(request: Request, run_id: str) -> Response:
    """Everything recorded about one run."""
    ledger = ledger_of(request)
    now = ledger.now()
    number = _run_id(run_id)
    try:
        run = ledger.get_run(number) if number is not None else None
    except RunNotFound:
        run = None
    if run is None:
        return _not_found(request, now, run_id)
    done = request.query_params.get("done", "")
    if done == "cancel-requested" and run.status is RunStatus.CANCELLED:
        done = "cancelled"  # the worker has stopped since
    notice = NOTICES.get(done)
    return _page(request, run, now, notice=notice)


@router.post("/runs/{run_id}/cancel", name="dashboard_cancel")
def cancel(request: Request, run_id: str, reason: Annotated[str, Form()] = "") -> Response:
    """Cancel a pending run, or ask a running one to stop."""
    ledger = ledger_of(request)
    now = ledger.now()
    # Refuse before looking the run up: a refusal must not say whether it exists.
    why = session.refusal(request, settings_of(request), ledger, now, "Not cancelled")
    if why is not None:
        return refused(request, now, why, back=request.url.path.rsplit("/", 1)[0])
    number = _run_id(run_id)
    try:
        run = ledger.get_run(number) if number is not None else None
    except RunNotFound:
        run = None
    if run is None:
        return _not_found(request, now, run_id)
    try:
        after = ledger.cancel(run.id, by="dashboard", reason=reason.strip() or None)
    except RunNotCancellable as exc:
        return _page(
            request, ledger.get_run(run.id), now, error=f"Not cancelled: {exc}.", status_code=409
        )
    done = "cancelled" if after.status is RunStatus.CANCELLED else "cancel-requested"
    return RedirectResponse(f"{request.url.path.rsplit('/', 1)[0]}?done={done}", status_code=303)
