"""Query parameters a route does not take: refused, not ignored (issue 19).

Every API router declares :func:`known_query` as a dependency, so
``triggeredBy=x`` is a 400 naming the parameters the route takes instead of
an answer that silently ignores the filter."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from runtrack.errors import UnknownParameter

__all__ = ["known_query"]

#: The query parameters of each route, by path and methods (they never change).
_QUERY_NAMES: dict[tuple[str, frozenset[str]], set[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query(request: Request) -> None:
    """A query parameter the route does not take is a 400 naming the ones it
    does: ``triggeredBy=x`` must not quietly answer every run."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    key = (route.path, frozenset(route.methods or ()))
    allowed = _QUERY_NAMES.get(key)
    if allowed is None:
        allowed = _QUERY_NAMES[key] = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise UnknownParameter(unknown[0], sorted(allowed))
