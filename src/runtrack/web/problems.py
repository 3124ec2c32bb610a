"""RFC 9457 problem details: every 4xx and 5xx of the app, in one shape.

Domain errors map to HTTP statuses in :data:`STATUS_OF`, the one table the API
uses; the most specific class in an exception's MRO wins. Framework errors
(unknown route, wrong method, request validation) get the same shape, so a
client parses one format whatever went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtrack.errors import (
    BackfillBusy,
    BackfillNotFound,
    CarriedNotFound,
    ConfigurationError,
    DatabaseUnavailable,
    InvalidCursor,
    InvalidInput,
    InvalidTransition,
    JobBusy,
    JobNotFound,
    LeaseLost,
    ProviderBusy,
    ProviderNotFound,
    RecordConflict,
    RunNotCancellable,
    RunNotFound,
    RuntrackError,
    UnknownParameter,
)

__all__ = [
    "MEDIA_TYPE",
    "STATUS_OF",
    "FieldError",
    "Problem",
    "ProblemError",
    "install",
    "problem_response",
    "responses",
    "status_of",
]

log = logging.getLogger("runtrack.web")

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:runtrack:problem:"

#: Domain error -> HTTP status. The most specific class of the error wins.
STATUS_OF: dict[type[BaseException], int] = {
    InvalidCursor: 400,
    UnknownParameter: 400,
    InvalidInput: 422,
    RunNotFound: 404,
    JobNotFound: 404,
    BackfillNotFound: 404,
    CarriedNotFound: 404,
    ProviderNotFound: 404,
    RunNotCancellable: 409,
    InvalidTransition: 409,
    JobBusy: 409,
    ProviderBusy: 409,
    BackfillBusy: 409,
    RecordConflict: 409,
    LeaseLost: 409,
    DatabaseUnavailable: 503,
    ConfigurationError: 500,
    RuntrackError: 500,
}


class FieldError(BaseModel):
    """One invalid part of a request."""

    field: str = Field(description="The parameter or body field, e.g. `limit` or `reason`.")
    location: str | None = Field(
        None, description="Where it was: query, path, body or header (null when not known)."
    )
    detail: str = Field(description="What was wrong and, where known, what is allowed.")


class Problem(BaseModel):
    """An RFC 9457 problem detail (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem (`about:blank`: see title).")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str | None = Field(None, description="What went wrong in this occurrence.")
    instance: str | None = Field(None, description="The request path.")
    errors: list[FieldError] | None = Field(
        None, description="For 400/422: each invalid field and what is allowed."
    )


class ProblemError(Exception):
    """Raised by the web layer itself (auth, health) to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.headers = headers
        self.extra = extra or {}


def status_of(error: BaseException) -> int:
    """The HTTP status of a domain error, from :data:`STATUS_OF`."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def problem_response(
    request: Request,
    status: int,
    detail: str | None,
    *,
    slug: str | None = None,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug if slug else "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = [e.model_dump() for e in errors]
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _slug(error: BaseException) -> str:
    name = type(error).__name__
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RuntrackError)
    status = status_of(exc)
    if isinstance(exc, DatabaseUnavailable):
        # The driver's message names hosts and databases: log it, do not serve it.
        log.warning("request %s: %s", request.url.path, exc)
        detail = "the database is unavailable; retry later"
        headers = {"Retry-After": "5"}
        return problem_response(request, 503, detail, slug="database-unavailable", headers=headers)
    if status >= 500:
        log.error("request %s failed", request.url.path, exc_info=exc)
        return problem_response(request, status, "internal error; see the server log")
    errors = None
    if isinstance(exc, InvalidInput):
        detail = exc.problem + (f" (allowed: {exc.allowed})" if exc.allowed else "")
        # A query parameter the handler checked itself (label, since, page)
        # is located as FastAPI locates the ones it checks.
        location = "query" if exc.field in request.query_params else None
        errors = [FieldError(field=exc.field, location=location, detail=detail)]
    return problem_response(request, status, str(exc), slug=_slug(exc), errors=errors)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(e) for e in exc.errors()]
    summary = "; ".join(f"{e.field}: {e.detail}" for e in errors)
    return problem_response(
        request, 422, f"invalid request: {summary}", slug="invalid-request", errors=errors
    )


def _field_error(error: Any) -> FieldError:
    loc = [str(part) for part in error.get("loc", ())]
    location = loc[0] if loc and loc[0] in ("query", "path", "body", "header") else None
    field = ".".join(loc[1:] if location else loc) or (location or "request")
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return FieldError(field=field, location=location, detail=message)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(request, exc.status_code, detail, headers=exc.headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request, exc.status, exc.detail, slug=exc.slug, headers=exc.headers, extra=exc.extra
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("request %s failed", request.url.path, exc_info=exc)
    return problem_response(request, 500, "internal error; see the server log")


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document."""
    app.add_exception_handler(RuntrackError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(Exception, _on_unexpected)


_DESCRIPTIONS = {
    400: "Bad request: an invalid cursor, a query parameter the route does not take, "
    "or a body that is not JSON",
    401: "Missing or wrong bearer token",
    403: "Forbidden: no API token is configured for this route",
    404: "Not found",
    409: "Conflict with the current state",
    422: "Invalid input: `errors` names each field",
    503: "The database is unavailable",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring problem documents for ``statuses``."""
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS.get(status, _title(status)),
        }
        for status in statuses
    }


def use_problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI document so that every 4xx/5xx response is declared
    as ``application/problem+json`` with the :class:`Problem` schema (FastAPI
    declares models as ``application/json`` and its own 422 shape)."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                if not str(code).startswith(("4", "5")):
                    continue
                content = response.get("content", {})
                body = content.pop("application/json", None) or {}
                ref = body.get("schema", {}).get("$ref", "")
                if not ref or ref.endswith("/HTTPValidationError"):
                    body = {"schema": {"$ref": "#/components/schemas/Problem"}}
                content[MEDIA_TYPE] = body
                response["content"] = content
    return schema
