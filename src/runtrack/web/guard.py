"""The gate every request passes before routing: who may read, who may
write, how big a body may be, and the headers every response carries.

It is plain ASGI (no Starlette middleware class) so that it runs before
FastAPI reads or parses anything. In order:

1. The read gate. With ``RUNTRACK_READ_TOKEN`` set, every path but
   ``/api/health``, ``/static`` and the sign-in page needs the read token (or
   the API token): as a bearer token, or as a dashboard session cookie outside
   ``/api``. Whatever the method, a refused request gets a 401 that carries no
   data, and an unknown id answers exactly like a known one.
2. The write gate. ``POST /api/...`` needs the API token as a bearer token.
3. The body cap: at most :data:`MAX_BODY` bytes, by ``Content-Length`` or as
   counted while reading a chunked body; more answers 413.

The dashboard's own buttons need a session with the API token too; their
routes check it before looking anything up (:func:`session.refusal`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from anyio import to_thread
from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtrack.config import Settings
from runtrack.errors import DatabaseUnavailable
from runtrack.ledger import Ledger
from runtrack.web import auth
from runtrack.web.pages import session
from runtrack.web.pages.signin import sign_in_required
from runtrack.web.problems import ProblemError, problem_response

__all__ = ["MAX_BODY", "Gate", "Guard", "gate_of"]

#: The largest request body accepted (the biggest legitimate one, a pause
#: with a reason, is well under a kilobyte).
MAX_BODY = 64 * 1024

#: Paths that need the read token but are not dashboard pages.
_DOCUMENTS = frozenset({"/metrics", "/openapi.json", "/docs"})
_SIGN_IN = frozenset({"/session", "/session/end"})
#: Files shipped in packages (the dashboard's, Swagger UI's): no ledger data.
_OPEN_PREFIXES = ("/static/", "/docs/assets/")


class Gate(Enum):
    """What a request must show to be let through."""

    OPEN = "open"  # health, static assets, the sign-in page
    API_READ = "api-read"  # bearer read token, if one is configured
    API_WRITE = "api-write"  # bearer API token
    DOCUMENT = "document"  # read token as bearer or session cookie; else a problem
    PAGE = "page"  # read token as session cookie or bearer; else the sign-in page


def gate_of(method: str, path: str) -> Gate:
    """The gate of a request for ``path`` (without the root path)."""
    if path == "/api/health" or path.startswith(_OPEN_PREFIXES) or path in _SIGN_IN:
        return Gate.OPEN
    if path == "/api" or path.startswith("/api/"):
        return Gate.API_WRITE if method == "POST" else Gate.API_READ
    if path in _DOCUMENTS:
        return Gate.DOCUMENT
    return Gate.PAGE


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :] or "/"
    return path


Responder = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """ASGI middleware: the gates, the body cap and the common headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_common_headers(send)
        try:
            refused = await _refusal(scope, receive)
        except DatabaseUnavailable:
            # Outside the app's exception handlers: answer as they would.
            refused = _problem(scope, receive, _UNAVAILABLE)
        if refused is not None:
            await refused(scope, receive, send)
            return
        body = await _capped_body(scope, receive)
        if isinstance(body, ProblemError):
            await _problem(scope, receive, body)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive) if body is not None else receive, send)


async def _refusal(scope: Scope, receive: Receive) -> Responder | None:
    """The response to a request that may not pass its gate, or ``None``."""
    app = scope["app"]
    settings: Settings = app.state.settings
    gate = gate_of(scope["method"], _route_path(scope))
    if gate is Gate.OPEN:
        return None
    token = auth.bearer_token(Headers(scope=scope))
    if gate is Gate.API_WRITE:
        problem = auth.write_refusal(settings, token)
        return _problem(scope, receive, problem) if problem else None
    if auth.reads_open(settings, token):
        return None
    if gate is Gate.API_READ:
        problem = auth.read_refusal(settings, token)
        return _problem(scope, receive, problem) if problem else None
    request = Request(scope, receive)
    ledger: Ledger = app.state.ledger
    if await to_thread.run_sync(_has_session, request, settings, ledger):
        return None
    if gate is Gate.DOCUMENT:
        problem = auth.read_refusal(settings, None)
        assert problem is not None
        return _problem(scope, receive, problem)
    page = await to_thread.run_sync(sign_in_required, request, ledger.now())
    return page


def _has_session(request: Request, settings: Settings, ledger: Ledger) -> bool:
    # Only a request with a session cookie costs a clock reading and a lookup.
    if not request.cookies.get(session.cookie_name(request, settings)):
        return False
    return session.session_of(request, settings, ledger, ledger.now()) is not None


def _problem(scope: Scope, receive: Receive, problem: ProblemError) -> Responder:
    request = Request(scope, receive)
    return problem_response(
        request, problem.status, problem.detail, slug=problem.slug, headers=problem.headers
    )


async def _capped_body(scope: Scope, receive: Receive) -> bytes | ProblemError | None:
    """The request body, read whole if it is at most :data:`MAX_BODY` bytes;
    ``None`` for a request without one (left for the app to read)."""
    headers = Headers(scope=scope)
    length = headers.get("content-length")
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    if length is None and not chunked:
        return None
    if length is not None and length.isascii() and length.isdigit():
        if int(length) == 0:
            return None
        if int(length) > MAX_BODY:
            return _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app sees an empty body
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


_UNAVAILABLE = ProblemError(
    503,
    "the database is unavailable; retry later",
    slug="database-unavailable",
    headers={"Retry-After": "5"},
)


def _too_large() -> ProblemError:
    return ProblemError(
        413,
        f"the request body is larger than {MAX_BODY} bytes, the most this server accepts",
        slug="body-too-large",
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then waits as usual."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


def _with_common_headers(send: Send) -> Send:
    """``send`` adding ``X-Content-Type-Options: nosniff`` to every response."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[Any] = list(message.get("headers", []))
            if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                headers.append((b"x-content-type-options", b"nosniff"))
            message = {**message, "headers": headers}
        await send(message)

    return sending
