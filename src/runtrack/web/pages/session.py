"""The dashboard's sign-in: a token entered once, remembered by a signed cookie.

The cookie never holds the token. It holds ``v2.<role>.<expiry>.<nonce>.<mac>``
where the mac is an HMAC-SHA256 keyed with the token of that role (the API
token for ``write``, the read token for ``read``), so the server checks it
without a session store, and changing the token on the server signs everyone
out. Signing out records the cookie's random nonce in the database until the
cookie would have expired (:meth:`Ledger.revoke_session`), so a copy of the
cookie stops working at once on every server process.

The cookie is HttpOnly (scripts cannot read it) and SameSite=Strict (no other
site can make the browser send it); it is ``Secure`` and named
``__Host-runtrack_session`` when the request came over HTTPS or
``RUNTRACK_SECURE_COOKIES`` is set. Buttons that change state are POST forms
that also refuse a request whose ``Origin`` or ``Sec-Fetch-Site`` says it came
from elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from runtrack.config import Settings
from runtrack.ledger import Ledger

__all__ = [
    "COOKIE",
    "LIFETIME",
    "SECURE_COOKIE",
    "Role",
    "Session",
    "clear_cookie",
    "cookie_name",
    "parse",
    "refusal",
    "role_of",
    "same_origin",
    "session_of",
    "set_cookie",
    "sign_out",
    "token_role",
]

COOKIE = "runtrack_session"
#: The name when Secure: browsers accept it only from HTTPS, with Path=/ and
#: no Domain, so neither a plain-HTTP page nor a sibling subdomain can set it.
SECURE_COOKIE = "__Host-runtrack_session"
LIFETIME = timedelta(hours=12)
#: Where the session found for a request is kept, so it is checked once.
_SCOPE_KEY = "runtrack.session"

Role = Literal["write", "read"]


@dataclass(frozen=True, slots=True)
class Session:
    """A valid session cookie: its role, nonce and expiry (Unix seconds)."""

    role: Role
    nonce: str
    expires: int


def _token_for(role: str, settings: Settings) -> str | None:
    if role == "write":
        return settings.api_token
    if role == "read":
        return settings.read_token
    return None


def _mac(token: str, role: str, expires: int, nonce: str) -> str:
    message = f"runtrack-dashboard-session:v2:{role}:{expires}:{nonce}".encode()
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


def secure(request: Request, settings: Settings) -> bool:
    """Whether the session cookie is ``Secure`` for this request."""
    return settings.secure_cookies or request.url.scheme == "https"


def cookie_name(request: Request, settings: Settings) -> str:
    """The session cookie's name for this request."""
    return SECURE_COOKIE if secure(request, settings) else COOKIE


def parse(value: str | None, settings: Settings, now: datetime) -> Session | None:
    """The session a cookie value signs, if its mac is right and it has not
    expired (no database access: revocation is :func:`session_of`'s)."""
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 5 or parts[0] != "v2" or not (parts[2].isascii() and parts[2].isdigit()):
        return None
    _, role, expires, nonce, mac = parts
    token = _token_for(role, settings)
    if token is None or len(expires) > 12 or int(expires) < now.timestamp() or not nonce:
        return None
    if not _equal(mac, _mac(token, role, int(expires), nonce)):
        return None
    return Session("write" if role == "write" else "read", nonce, int(expires))


def session_of(
    request: Request, settings: Settings, ledger: Ledger, now: datetime
) -> Session | None:
    """The request's valid, unexpired, not signed-out session (looked up once
    per request)."""
    if _SCOPE_KEY in request.scope:
        found: Session | None = request.scope[_SCOPE_KEY]
        return found
    found = parse(request.cookies.get(cookie_name(request, settings)), settings, now)
    if found is not None and ledger.session_revoked(found.nonce):
        found = None
    request.scope[_SCOPE_KEY] = found
    return found


def role_of(request: Request, settings: Settings, ledger: Ledger, now: datetime) -> Role | None:
    """The role of the request's session, if it has a valid one."""
    found = session_of(request, settings, ledger, now)
    return found.role if found is not None else None


def set_cookie(
    response: Response,
    request: Request,
    settings: Settings,
    grant: tuple[Role, str],
    now: datetime,
) -> None:
    """Remember a sign-in with ``grant`` (the role and the token that gave
    it) for :data:`LIFETIME`."""
    role, token = grant
    expires = int((now + LIFETIME).timestamp())
    nonce = secrets.token_urlsafe(16)
    response.set_cookie(
        cookie_name(request, settings),
        f"v2.{role}.{expires}.{nonce}.{_mac(token, role, expires, nonce)}",
        max_age=int(LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure(request, settings),
    )


def clear_cookie(response: Response, request: Request, settings: Settings) -> None:
    """Expire the session cookie in this browser."""
    response.delete_cookie(
        cookie_name(request, settings),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure(request, settings),
    )


def sign_out(request: Request, settings: Settings, ledger: Ledger, now: datetime) -> None:
    """Revoke the request's session on every server process until it expires."""
    found = session_of(request, settings, ledger, now)
    if found is not None:
        ledger.revoke_session(found.nonce, datetime.fromtimestamp(found.expires, UTC))
        request.scope[_SCOPE_KEY] = None


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


def refusal(
    request: Request, settings: Settings, ledger: Ledger, now: datetime, outcome: str
) -> str | None:
    """Why a state-changing button may not act for this request (a sentence
    starting with ``outcome``, e.g. "Not cancelled"), or ``None`` if it may."""
    if not same_origin(request):
        return f"{outcome}: the request did not come from the dashboard's own pages."
    if settings.api_token is None:
        return (
            f"{outcome}: this server has no API token configured, so the dashboard is "
            "read-only. Set RUNTRACK_API_TOKEN on the server to enable it."
        )
    if role_of(request, settings, ledger, now) != "write":
        return f"{outcome}: this needs the API token. Sign in with it, then try again."
    return None
