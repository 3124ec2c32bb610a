"""The dashboard's sign-in: a token entered once, remembered by a signed cookie.

The cookie never holds the token. It holds ``v1.<role>.<expiry>.<mac>`` where
the mac is an HMAC-SHA256 keyed with the token of that role (the API token for
``write``, the read token for ``read``), so the server checks it without any
session store, and changing the token on the server signs everyone out. The
cookie is HttpOnly (scripts cannot read it) and SameSite=Strict (no other site
can make the browser send it); buttons that change state are POST forms that
also refuse a request whose ``Origin`` or ``Sec-Fetch-Site`` says it came from
elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from runtrack.config import Settings

__all__ = [
    "COOKIE",
    "LIFETIME",
    "Role",
    "clear_cookie",
    "refusal",
    "role_of",
    "same_origin",
    "set_cookie",
    "token_role",
]

COOKIE = "runtrack_session"
LIFETIME = timedelta(hours=12)

Role = Literal["write", "read"]


def _token_for(role: str, settings: Settings) -> str | None:
    if role == "write":
        return settings.api_token
    if role == "read":
        return settings.read_token
    return None


def _mac(token: str, role: str, expires: int) -> str:
    message = f"runtrack-dashboard-session:v1:{role}:{expires}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def token_role(given: str, settings: Settings) -> Role | None:
    """Which role the entered token grants (constant-time comparisons)."""
    if settings.api_token is not None and _equal(given, settings.api_token):
        return "write"
    if settings.read_token is not None and _equal(given, settings.read_token):
        return "read"
    return None


def role_of(request: Request, settings: Settings, now: datetime) -> Role | None:
    """The role of a valid, unexpired session cookie on ``request``."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != "v1" or not parts[2].isdigit():
        return None
    _, role, expires, mac = parts
    token = _token_for(role, settings)
    if token is None or int(expires) < now.timestamp():
        return None
    if not _equal(mac, _mac(token, role, int(expires))):
        return None
    return "write" if role == "write" else "read"


def set_cookie(response: Response, request: Request, role: Role, token: str, now: datetime) -> None:
    """Remember a sign-in for :data:`LIFETIME`."""
    expires = int((now + LIFETIME).timestamp())
    response.set_cookie(
        COOKIE,
        f"v1.{role}.{expires}.{_mac(token, role, expires)}",
        max_age=int(LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    """Sign out: expire the session cookie."""
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from this site's own pages.

    Browsers send ``Sec-Fetch-Site`` and ``Origin`` on POSTs; a request from
    another site is refused even before the SameSite cookie would have been
    missing. Clients that send neither (curl) still need the cookie."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host")


def refusal(request: Request, settings: Settings, now: datetime, outcome: str) -> str | None:
    """Why a state-changing button may not act for this request (a sentence
    starting with ``outcome``, e.g. "Not cancelled"), or ``None`` if it may."""
    if not same_origin(request):
        return f"{outcome}: the request did not come from the dashboard's own pages."
    if settings.api_token is None:
        return (
            f"{outcome}: this server has no API token configured, so the dashboard is "
            "read-only. Set RUNTRACK_API_TOKEN on the server to enable it."
        )
    if role_of(request, settings, now) != "write":
        return f"{outcome}: this needs the API token. Sign in with it, then try again."
    return None
