"""The operator's dashboard: server-rendered pages mounted by ``create_app``.

Pages live in :mod:`runtrack.web.pages` (one module per page family), their
templates in ``web/templates`` and their CSS/JS in ``web/static`` (served
under ``/static``). Routes only read the app's ``Ledger`` and ``Settings``
from ``request.app.state``; nothing is kept at module level but the routes.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from runtrack.web.pages import (
    jobs,
    overview,
    providers,
    queue,
    run_detail,
    runs,
    signin,
    workers,
)
from runtrack.web.pages.templating import STATIC_DIR

__all__ = ["mount_static", "router"]

router = APIRouter(include_in_schema=False)
# The queue's POST routes (issue 17) come before the job page's catch-all path.
for _pages in (overview, runs, run_detail, queue, jobs, providers, workers, signin):
    router.include_router(_pages.router)


def mount_static(app: FastAPI) -> None:
    """Serve the dashboard's CSS and JS at ``/static`` (on the app itself:
    mounts inside an included router are not carried over by every FastAPI)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
