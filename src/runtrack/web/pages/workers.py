"""Workers (``/workers``, issue 17): the runner processes that are alive, and
those gone recently (stopped gracefully, or dead: not seen for the stale
threshold), with the jobs each serves and the runs each is running."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from runtrack.web.pages.templating import ledger_of, live_seconds, render
from runtrack.workers import WorkerState

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: Gone workers listed: those last seen within this age.
RECENT = "1d"


@router.get("/workers", name="dashboard_workers")
def workers_page(request: Request) -> Response:
    """Live workers first, then the ones gone recently."""
    ledger = ledger_of(request)
    now = ledger.now()
    found = ledger.workers(recent=RECENT)
    live = [w for w in found if w.state is WorkerState.LIVE]
    gone = [w for w in found if w.state is not WorkerState.LIVE]
    context = {
        "title": "Workers",
        "nav": "workers",
        "workers": live + gone,
        "live_count": len(live),
        "gone_count": len(gone),
        "recent": RECENT,
        "live": True,
        "live_seconds": live_seconds(any(w.running for w in live)),
    }
    return render(request, "workers.html", context, now=now)
