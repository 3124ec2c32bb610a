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
from runtrack.web import api, dashboard, metrics, problems

__all__ = ["create_app"]


def create_app(
    ledger: Ledger | None = None,
    settings: Settings | None = None,
    *,
    metrics_ttl: float = 5.0,
) -> FastAPI:
    """Build the app on ``ledger``, configured by ``settings`` (default: the
    ``RUNTRACK_*`` environment).

    Without a ledger, one is opened from the settings when the app starts and
    closed when it stops; a ledger given by the caller is left open.
    """
    settings = settings or Settings.from_env()
    owned: list[Ledger] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "ledger", None) is None:
            opened = Ledger.from_settings(settings)
            owned.append(opened)
            _attach(app, opened, metrics_ttl)
        try:
            yield
        finally:
            while owned:
                owned.pop().close()

    app = FastAPI(
        title="runtrack",
        version=__version__,
        summary="The run ledger for data-ingestion jobs: runs, jobs, providers, health.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ledger = None
    if ledger is not None:
        _attach(app, ledger, metrics_ttl)
    problems.install(app)
    app.include_router(api.router, prefix="/api")
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    dashboard.mount_static(app)
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
