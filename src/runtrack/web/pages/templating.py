"""Rendering: the Jinja environment (autoescaping on), the context every page
shares, and the headers every page carries.

Pages are plain HTML that reads with JavaScript off. The Content-Security-Policy
allows scripts and styles only from ``/static``, so even a string that slipped
past escaping could not run inline script.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from runtrack.config import Settings
from runtrack.health import failure_text
from runtrack.ledger import Ledger
from runtrack.models import ACTIVE, RunStatus
from runtrack.web.pages import formatting
from runtrack.web.pages.session import role_of

__all__ = ["STATIC_DIR", "TEMPLATE_DIR", "ledger_of", "live_seconds", "render", "settings_of"]

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

#: Seconds between live refreshes of a page that shows active runs.
REFRESH_SECONDS = 3
#: ... and of one that shows none (a wall screen between hourly runs must
#: still show the next failure).
IDLE_REFRESH_SECONDS = 15

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

#: A glyph next to each status word, so status never relies on colour alone.
STATUS_GLYPHS = {
    RunStatus.PENDING: "…",
    RunStatus.RUNNING: "▶",
    RunStatus.SUCCESS: "✓",
    RunStatus.PARTIAL: "◐",
    RunStatus.FAILED: "✕",
    RunStatus.CANCELLED: "⊘",
}


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        span=formatting.span,
        clock=formatting.clock,
        number=formatting.number,
        pretty_json=formatting.pretty_json,
        compact_json=formatting.compact_json,
        quoted=formatting.quoted,
    )
    env.globals.update(
        statuses=list(RunStatus),
        active_statuses=ACTIVE,
        glyphs=STATUS_GLYPHS,
        refresh_seconds=REFRESH_SECONDS,
        failure_text=failure_text,  # issue 18: a rate limit reads as a provider pause
    )
    return env


templates = Jinja2Templates(env=_environment())


def live_seconds(active: bool) -> int:
    """How often a live page refreshes: often while runs are active."""
    return REFRESH_SECONDS if active else IDLE_REFRESH_SECONDS


def ledger_of(request: Request) -> Ledger:
    """The ledger ``create_app`` put on the application."""
    ledger: Ledger = request.app.state.ledger
    return ledger


def settings_of(request: Request) -> Settings:
    """The settings ``create_app`` put on the application."""
    settings: Settings = request.app.state.settings
    return settings


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    now: datetime,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``name`` with the shared context: the request, the ledger's time
    (``now`` and the ``ago`` helper), the signed-in role and the base path."""
    base = request.scope.get("root_path", "").rstrip("/")
    shared: dict[str, Any] = {
        "request": request,
        "now": now,
        "ago": lambda value: formatting.ago(value, now),
        "role": role_of(request, settings_of(request), ledger_of(request), now),
        "base": base,
        "write_enabled": settings_of(request).api_token is not None,
        "public_errors": settings_of(request).public_errors,
        "stale_after": ledger_of(request).stale_after,
        "live": False,
        "live_seconds": REFRESH_SECONDS,
        "nav": "",
        "notice": None,
        "error": None,
    }
    shared.update(context)
    # The refresh re-fetches the page's own URL: only a GET can be fetched again.
    shared["live"] = shared["live"] and request.method == "GET"
    response = templates.TemplateResponse(request, name, shared, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response
