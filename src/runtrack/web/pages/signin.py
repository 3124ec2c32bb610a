"""Sign in with a token once (``/session``), sign out, and the read gate.

The token travels only in the body of the sign-in POST; it is never put in
a URL, a page, a cookie or a log line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from runtrack.web.pages import session
from runtrack.web.pages.templating import ledger_of, render, settings_of

__all__ = ["deny_reader", "router", "safe_next"]

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def deny_reader(request: Request, now: datetime) -> Response | None:
    """With ``RUNTRACK_READ_TOKEN`` set, pages need a session: the sign-in
    page (401) for a visitor without one, ``None`` for everyone allowed."""
    settings = settings_of(request)
    if settings.read_token is None or session.role_of(request, settings, now) is not None:
        return None
    return _page(
        request,
        now,
        next_path=request.url.path,
        status_code=401,
        error="This server requires a token to read the dashboard. Sign in below.",
    )


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
    session.set_cookie(response, request, role, token, now)
    return response


@router.post("/session/end", name="dashboard_sign_out")
def sign_out(request: Request) -> Response:
    """Forget the session cookie (only for the dashboard's own sign-out button)."""
    if not session.same_origin(request):
        return _page(
            request, ledger_of(request).now(), next_path="/", status_code=403, error=_CROSS_SITE
        )
    response = RedirectResponse("/", status_code=303)
    session.clear_cookie(response, request)
    return response


_CROSS_SITE = "Refused: this request did not come from the dashboard's own pages."
_NO_TOKENS = (
    "This server has no token configured, so the dashboard is read-only. "
    "Set RUNTRACK_API_TOKEN (16+ random characters) on the server to enable "
    "cancel and resume."
)
