"""Bearer tokens: who may read and who may change state.

Mutating API routes need ``Authorization: Bearer <RUNTRACK_API_TOKEN>``; with
no token configured they are disabled (403, saying how to enable them) rather
than open. Reads are open unless ``RUNTRACK_READ_TOKEN`` is set; the API
token also grants reads. Tokens are compared in constant time and never
echoed or logged.

The checks run in :mod:`runtrack.web.guard`, before routing and before any
request body is read; the routes only declare the scheme for OpenAPI.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi import Request
from fastapi.security import HTTPBearer

from runtrack.config import Settings
from runtrack.web.problems import ProblemError

__all__ = [
    "bearer",
    "bearer_token",
    "read_refusal",
    "reads_open",
    "signed_in",
    "write_refusal",
]

#: Declares the scheme in OpenAPI; never rejects by itself (the guard does).
bearer = HTTPBearer(auto_error=False, description="RUNTRACK_API_TOKEN or RUNTRACK_READ_TOKEN")

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="runtrack"'}


def _matches(given: str, expected: str | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def reads_open(settings: Settings, token: str | None) -> bool:
    """Whether ``token`` (or no token) may read: always without a read token,
    else with the read token or the API token."""
    if settings.read_token is None:
        return True
    return token is not None and (
        _matches(token, settings.read_token) or _matches(token, settings.api_token)
    )


def read_refusal(settings: Settings, token: str | None) -> ProblemError | None:
    """The 401 of a read without the read token, or ``None``."""
    if reads_open(settings, token):
        return None
    return ProblemError(
        401,
        "reads require 'Authorization: Bearer <RUNTRACK_READ_TOKEN>' on this server",
        slug="unauthorized",
        headers=_CHALLENGE,
    )


def write_refusal(settings: Settings, token: str | None) -> ProblemError | None:
    """The 403 (no API token configured) or 401 (missing or wrong token) of a
    state-changing API request, or ``None``."""
    if settings.api_token is None:
        return ProblemError(
            403,
            "this route changes state and no API token is configured; set "
            "RUNTRACK_API_TOKEN (16+ random characters) on the server and send it "
            "as 'Authorization: Bearer <token>'",
            slug="api-token-not-configured",
        )
    if token is None or not _matches(token, settings.api_token):
        return ProblemError(
            401,
            "missing or wrong bearer token: send 'Authorization: Bearer <RUNTRACK_API_TOKEN>'",
            slug="unauthorized",
            headers=_CHALLENGE,
        )
    return None


def signed_in(request: Request) -> bool:
    """Whether the request carries the API token or the read token (what
    stack traces and error details are shown to)."""
    token = bearer_token(request.headers)
    settings: Settings = request.app.state.settings
    return token is not None and (
        _matches(token, settings.api_token) or _matches(token, settings.read_token)
    )
