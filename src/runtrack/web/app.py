"""The FastAPI application: JSON API under ``/api``, ``/metrics`` and the
dashboard, built by :func:`create_app` with no module-level state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from runtrack import __version__
from runtrack.config import Settings
from runtrack.ledger import Ledger
from runtrack.web import api, dashboard, docs, metrics, problems

# Issue 17's routes join api.router when imported (one flat router for /api).
from runtrack.web import backfills as backfill_routes  # noqa: F401
from runtrack.web import queue as queue_routes  # noqa: F401
from runtrack.web import workers as worker_routes  # noqa: F401
from runtrack.web.checks import BackgroundChecks
from runtrack.web.guard import Guard
from runtrack.web.pages.overview import OverviewCache

__all__ = ["create_app"]


def create_app(
    ledger: Ledger | None = None,
    settings: Settings | None = None,
    *,
    metrics_ttl: float = 5.0,
    overview_ttl: float = 3.0,
    checks: bool = False,
) -> FastAPI:
    """Build the app on ``ledger``, configured by ``settings`` (default: the
    ``RUNTRACK_*`` environment).

    ``/metrics`` reads the ledger at most once per ``metrics_ttl`` seconds,
    the overview for visitors without a session once per ``overview_ttl``.

    Without a ledger, one is opened from the settings when the app starts and
    closed when it stops; a ledger given by the caller is left open.

    With ``checks`` (``runtrack serve``), the app checks expectations in the
    background every ``settings.check_every`` seconds while it runs (see
    :mod:`runtrack.web.checks`).
    """
    settings = settings or Settings.from_env()
    owned: list[Ledger] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "ledger", None) is None:
            opened = Ledger.from_settings(settings)
            owned.append(opened)
            _attach(app, opened, metrics_ttl)
        background = None
        if checks and settings.check_every > 0:
            background = BackgroundChecks(app.state.ledger, settings.check_every)
            background.start()
        try:
            yield
        finally:
            if background is not None:
                await background.stop()  # before the ledger closes under it
            while owned:
                owned.pop().close()

    app = FastAPI(
        title="runtrack",
        version=__version__,
        summary="The run ledger for data-ingestion jobs: runs, jobs, providers, health.",
        lifespan=lifespan,
        docs_url=None,  # served by docs.install, offline
        redoc_url=None,  # ReDoc only loads from a CDN
    )
    app.state.settings = settings
    app.state.ledger = None
    app.state.overview_cache = OverviewCache(overview_ttl)
    if ledger is not None:
        _attach(app, ledger, metrics_ttl)
    problems.install(app)
    app.add_middleware(Guard)
    app.include_router(api.router, prefix="/api")
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    dashboard.mount_static(app)
    docs.install(app)
    _finish_openapi(app, reads_open=settings.read_token is None)
    return app


def _attach(app: FastAPI, ledger: Ledger, metrics_ttl: float) -> None:
    app.state.ledger = ledger
    app.state.ledger_calls = api.LedgerCalls(ledger)
    app.state.metrics_registry = metrics.registry_for(ledger, metrics_ttl)


def _finish_openapi(app: FastAPI, *, reads_open: bool) -> None:
    """Publish error responses as ``application/problem+json``; without a read
    token, declare the bearer token optional on reads (it is then ignored)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = problems.use_problem_media_type(build())
            if reads_open:
                _optional_auth_on_reads(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _optional_auth_on_reads(schema: dict[str, Any]) -> None:
    for path in schema.get("paths", {}).values():
        operation = path.get("get")
        if operation and operation.get("security"):
            operation["security"] = [{}, *operation["security"]]
