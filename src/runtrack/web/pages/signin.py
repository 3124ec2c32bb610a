"""Sign in with a token once (``/session``), sign out, and the sign-in page
that answers a visitor without a session when reads need a token.

The token travels only in the body of the sign-in POST; it is never put in
a URL, a page, a cookie or a log line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from runtrack.web.pages import session
from runtrack.web.pages.templating import ledger_of, render, settings_of

__all__ = ["refused", "router", "safe_next", "sign_in_required"]

router = APIRouter(include_in_schema=False)

#: Longest ``next`` kept; a longer one is not a page of this dashboard.
MAX_NEXT = 2000


def safe_next(target: str | None) -> str:
    """A local path to go back to after signing in (never another site).

    Browsers strip tabs and newlines from URLs and read a backslash as a
    slash, so ``/\\t/evil.example`` would become ``//evil.example``: anything
    with control characters, whitespace or backslashes is refused, and so is
    anything that parses with a scheme or a host.
    """
    if not target or len(target) > MAX_NEXT or not target.startswith("/"):
        return "/"
    if any(c.isspace() or c == "\\" or ord(c) < 32 or 127 <= ord(c) < 160 for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return "/"
    return target


def sign_in_required(request: Request, now: datetime) -> Response:
    """The sign-in page (401) for a visitor without a session on a server
    whose reads need a token; it shows nothing of the ledger."""
    return _page(
        request,
        now,
        next_path=request.url.path if request.method == "GET" else "/",
        status_code=401,
        error="This server requires a token to read the dashboard. Sign in below.",
    )


def refused(request: Request, now: datetime, message: str, *, back: str) -> Response:
    """The 403 page of a button that may not act: why, and a way back; it
    shows nothing of the ledger (not even whether the run exists)."""
    context = {"title": "Refused", "message": message, "back": safe_next(back)}
    return render(request, "refused.html", context, now=now, status_code=403)


def _page(
    request: Request,
    now: datetime,
    *,
    next_path: str,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    return render(
        request,
        "session.html",
        {"next_path": safe_next(next_path), "error": error, "title": "Sign in"},
        now=now,
        status_code=status_code,
    )


@router.get("/session", name="dashboard_session")
def session_page(
    request: Request, next_path: Annotated[str, Query(alias="next")] = "/"
) -> Response:
    """The sign-in form, or who is signed in."""
    return _page(request, ledger_of(request).now(), next_path=next_path)


@router.post("/session", name="dashboard_sign_in")
def sign_in(
    request: Request,
    token: Annotated[str, Form()] = "",
    target: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    """Check the token; remember the role it grants in the session cookie."""
    next_path = safe_next(target)
    settings = settings_of(request)
    now = ledger_of(request).now()
    if not session.same_origin(request):
        return _page(request, now, next_path=next_path, status_code=403, error=_CROSS_SITE)
    role = session.token_role(token, settings) if token else None
    if role is None:
        if settings.api_token is None and settings.read_token is None:
            error = _NO_TOKENS
        else:
            error = "That token is not valid here. Check RUNTRACK_API_TOKEN and try again."
        return _page(request, now, next_path=next_path, status_code=403, error=error)
    response = RedirectResponse(next_path, status_code=303)
    session.set_cookie(response, request, settings, (role, token), now)
    return response


@router.post("/session/end", name="dashboard_sign_out")
def sign_out(request: Request) -> Response:
    """Sign out: the session is revoked on every server process, and the
    cookie forgotten (only for the dashboard's own sign-out button)."""
    ledger = ledger_of(request)
    now = ledger.now()
    if not session.same_origin(request):
        return _page(request, now, next_path="/", status_code=403, error=_CROSS_SITE)
    settings = settings_of(request)
    session.sign_out(request, settings, ledger, now)
    response = RedirectResponse("/", status_code=303)
    session.clear_cookie(response, request, settings)
    return response


_CROSS_SITE = "Refused: this request did not come from the dashboard's own pages."
_NO_TOKENS = (
    "This server has no token configured, so the dashboard is read-only. "
    "Set RUNTRACK_API_TOKEN (16+ random characters) on the server to enable "
    "cancel and resume."
)
