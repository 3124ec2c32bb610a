"""Bearer-token checks for the API.

Mutating routes need ``Authorization: Bearer <RUNTRACK_API_TOKEN>``; with no
token configured they are disabled (403, saying how to enable them) rather
than open. Reads are open unless ``RUNTRACK_READ_TOKEN`` is set; the API
token also grants reads. Tokens are compared in constant time and never
echoed or logged.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runtrack.config import Settings
from runtrack.web.problems import ProblemError

__all__ = ["bearer", "require_read", "require_write"]

#: Declares the scheme in OpenAPI; never rejects by itself (we answer problems).
bearer = HTTPBearer(auto_error=False, description="RUNTRACK_API_TOKEN or RUNTRACK_READ_TOKEN")

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="runtrack"'}


def _matches(given: str, expected: str | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        return None
    return credentials.credentials


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def require_write(request: Request, credentials: Credentials) -> None:
    """Dependency of every mutating route."""
    settings = _settings(request)
    if settings.api_token is None:
        raise ProblemError(
            403,
            "this route changes state and no API token is configured; set "
            "RUNTRACK_API_TOKEN (16+ random characters) on the server and send it "
            "as 'Authorization: Bearer <token>'",
            slug="api-token-not-configured",
        )
    token = _token(credentials)
    if token is None or not _matches(token, settings.api_token):
        raise ProblemError(
            401,
            "missing or wrong bearer token: send 'Authorization: Bearer <RUNTRACK_API_TOKEN>'",
            slug="unauthorized",
            headers=_CHALLENGE,
        )


async def require_read(request: Request, credentials: Credentials) -> None:
    """Dependency of every read route: open unless a read token is configured."""
    settings = _settings(request)
    if settings.read_token is None:
        return
    token = _token(credentials)
    if token is None or not (
        _matches(token, settings.read_token) or _matches(token, settings.api_token)
    ):
        raise ProblemError(
            401,
            "reads require 'Authorization: Bearer <RUNTRACK_READ_TOKEN>' on this server",
            slug="unauthorized",
            headers=_CHALLENGE,
        )
