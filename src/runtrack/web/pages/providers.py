"""Providers (``/providers``): which are paused, why and for how long, and a
resume button (``POST /providers/{name}/resume``) for the API token holder."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from runtrack.errors import InvalidInput
from runtrack.web.pages import session
from runtrack.web.pages.formatting import quoted
from runtrack.web.pages.signin import refused
from runtrack.web.pages.templating import ledger_of, render, settings_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    now: datetime,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    # Paused providers first: they are the ones an operator came for.
    rows = sorted(ledger_of(request).providers(), key=lambda row: (row.pause is None, row.name))
    context = {
        "title": "Providers",
        "nav": "providers",
        "providers": rows,
        "paused": sum(1 for row in rows if row.pause),
        "notice": notice,
        "error": error,
    }
    return render(request, "providers.html", context, now=now, status_code=status_code)


@router.get("/providers", name="dashboard_providers")
def providers_page(request: Request) -> Response:
    """Every provider with its pause, if any."""
    now = ledger_of(request).now()
    resumed = request.query_params.get("resumed")
    return _page(
        request, now, notice=f"Resumed {resumed}: its jobs run again." if resumed else None
    )


@router.post("/providers/{name:path}/resume", name="dashboard_resume")
def resume(request: Request, name: str) -> Response:
    """End a provider's pause now."""
    ledger = ledger_of(request)
    now = ledger.now()
    base = request.scope.get("root_path", "").rstrip("/")
    why = session.refusal(request, settings_of(request), ledger, now, "Not resumed")
    if why is not None:
        return refused(request, now, why, back=f"{base}/providers")
    try:
        ended = ledger.resume(name)
    except InvalidInput as exc:
        return _page(request, now, error=f"Not resumed: {exc}", status_code=400)
    if not ended:
        return _page(request, now, error=f"Not resumed: {name!r} was not paused.", status_code=409)
    return RedirectResponse(f"{base}/providers?resumed={quoted(name)}", status_code=303)
