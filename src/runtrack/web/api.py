"""The JSON API under ``/api``: each route is a thin call into the ledger.

The ledger is synchronous, so each route hands its work to a worker thread in
one hop (:meth:`LedgerCalls.json`): the ledger calls, building the response
model and serializing it. The route returns the JSON as a ``Response``, which
FastAPI passes through; the declared ``response_model`` still makes the
OpenAPI document. Validation happens twice on purpose: the declared
constraints (``ge``, ``le``, enums) document the API and reject malformed
requests early; the ledger still checks everything it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from runtrack import inputs
from runtrack.errors import InvalidInput
from runtrack.ledger import Ledger
from runtrack.models import ItemStatus, RunStatus
from runtrack.web import auth
from runtrack.web.carried import CarriedOut, ForgetOut
from runtrack.web.incidents import IncidentList, IncidentOut
from runtrack.web.problems import ProblemError, responses
from runtrack.web.query import known_query
from runtrack.web.schemas import (
    CancelRequest,
    GroupList,
    GroupOut,
    HealthOut,
    HealthProblem,
    ItemOut,
    ItemPage,
    JobDetail,
    JobList,
    JobOut,
    NumberedRunPage,
    PauseOut,
    PauseRequest,
    ProviderList,
    ProviderOut,
    ResumeOut,
    RunDetail,
    RunList,
    RunPage,
    RunSummary,
)

__all__ = ["MAX_LIMIT", "Calls", "LedgerCalls", "read_route", "router", "write_route"]

#: Largest page size; a larger ``limit`` answers 422 (it is not clamped, so a
#: client never silently gets fewer rows than it asked for).
MAX_LIMIT = 200
MAX_ID = 2**63 - 1  # BIGINT: a larger id cannot exist, and drivers reject it
#: Concurrent ledger calls when the engine's pool does not say its size.
DEFAULT_CALLS = 5

READ = responses(400, 401, 422, 503)
WRITE = responses(400, 401, 403, 422, 503)

#: Everything under /api, in one flat router (each level of included routers
#: costs every request a pass of route matching). Health is open (load
#: balancers send no token); reads need the read token if one is configured;
#: writes need the API token. :mod:`runtrack.web.guard` checks both before
#: routing and before the request body is read; here they are declared.
router = APIRouter()
_Route = TypeVar("_Route", bound=Callable[..., Any])


def read_route(path: str, **options: Any) -> Callable[[_Route], _Route]:
    extra = options.pop("responses", {})
    needs = [Depends(auth.bearer), Depends(known_query)]
    return router.get(path, dependencies=needs, responses={**READ, **extra}, **options)


def write_route(path: str, **options: Any) -> Callable[[_Route], _Route]:
    extra = options.pop("responses", {})
    needs = [Depends(auth.bearer), Depends(known_query)]
    return router.post(path, dependencies=needs, responses={**WRITE, **extra}, **options)


class LedgerCalls:
    """The API's way to the ledger: blocking work in a worker thread, at most
    as many at once as the engine's pool keeps connections.

    More concurrent calls than pooled connections would not run faster: each
    extra one opens a connection and closes it again when returned to a full
    pool (on PostgreSQL, a server process each time). Past the limit, requests
    wait for a free slot instead.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        size = getattr(ledger.engine.pool, "size", None)
        self.limiter = CapacityLimiter(max(1, size()) if callable(size) else DEFAULT_CALLS)

    async def json(self, work: Callable[[Ledger], BaseModel]) -> Response:
        """Run ``work`` on the ledger and serialize its answer, in one hop to a
        worker thread (each hop costs more CPU than building a page)."""
        body = await to_thread.run_sync(self._dump, work, limiter=self.limiter)
        return Response(body, media_type="application/json")

    def _dump(self, work: Callable[[Ledger], BaseModel]) -> bytes:
        model = work(self.ledger)
        return model.model_dump_json().encode()


async def _calls(request: Request) -> LedgerCalls:
    calls: LedgerCalls = request.app.state.ledger_calls
    return calls


Calls = Annotated[LedgerCalls, Depends(_calls)]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="The run's id.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="The next_cursor of the previous page (opaque)."),
]
Name = Annotated[str | None, Query(max_length=255)]
JobKey = Annotated[str, Path(min_length=1, max_length=255, description="The job's key.")]
_TIME = "ISO 8601 (2026-01-31T08:00:00Z) or an age with a unit (30m, 24h, 7d), as in the CLI"
Since = Annotated[str | None, Query(max_length=64, description=f"created_at >= since: {_TIME}")]
Until = Annotated[str | None, Query(max_length=64, description=f"created_at < until: {_TIME}")]


# -- runs ------------------------------------------------------------------


@read_route(
    "/runs",
    response_model=RunPage | NumberedRunPage,
    responses=responses(400),
    summary="List runs, newest first",
)
async def list_runs(
    calls: Calls,
    job: Name = None,
    provider: Name = None,
    status: Annotated[list[RunStatus] | None, Query(description="Repeatable.")] = None,
    triggered_by: Name = None,
    since: Since = None,
    until: Until = None,
    label: Annotated[
        list[str] | None,
        Query(
            description="A label the runs have, name:value (split at the first ':'). "
            "Repeatable: runs with all of them.",
        ),
    ] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
    page: Annotated[
        int | None,
        Query(
            ge=1,
            le=1_000_000,
            description="Page number (from 1) instead of a cursor; answers with a "
            "total. Deep pages cost more: the cursor is the scalable way.",
        ),
    ] = None,
) -> Response:
    if page is not None and cursor is not None:
        raise InvalidInput("page", "cannot be combined with cursor", "cursor or page")
    filters: dict[str, Any] = {
        "job": job,
        "provider": provider,
        "status": status,
        "triggered_by": triggered_by,
        "labels": inputs.label_pairs("label", label, ":") if label else None,
    }

    def work(ledger: Ledger) -> RunPage | NumberedRunPage:
        now = ledger.now()
        filters["since"] = since and inputs.time_or_age("since", since, now)
        filters["until"] = until and inputs.time_or_age("until", until, now)
        if page is not None:
            return NumberedRunPage.of(ledger.list_runs_by_page(page, limit=limit, **filters), now)
        result = ledger.list_runs(limit=limit, cursor=cursor, **filters)
        return RunPage.of(result, now)

    return await calls.json(work)


@read_route("/runs/recent", response_model=RunList, summary="The latest runs")
async def recent_runs(
    calls: Calls, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 5
) -> Response:
    def work(ledger: Ledger) -> RunList:
        now = ledger.now()
        return RunList(data=[RunSummary.of(r, now) for r in ledger.recent_runs(limit)])

    return await calls.json(work)


@read_route(
    "/runs/status/{status}",
    response_model=RunPage,
    responses=responses(400),
    summary="List runs in one status",
)
async def runs_in_status(
    calls: Calls, status: RunStatus, limit: Limit = 20, cursor: Cursor = None
) -> Response:
    def work(ledger: Ledger) -> RunPage:
        now = ledger.now()
        return RunPage.of(ledger.list_runs(status=status, limit=limit, cursor=cursor), now)

    return await calls.json(work)


def _private(request: Request) -> bool:
    """Whether a run's stack and error details may be shown: to signed-in
    callers, or to all with RUNTRACK_PUBLIC_ERRORS=true (they can hold secrets)."""
    settings: Any = request.app.state.settings
    return bool(settings.public_errors) or auth.signed_in(request)


@read_route(
    "/runs/{run_id}",
    response_model=RunDetail,
    responses=responses(404),
    summary="A run (its error's stack and details only for signed-in callers)",
)
async def get_run(calls: Calls, run_id: RunId, request: Request) -> Response:
    private = _private(request)
    return await calls.json(
        lambda ledger: RunDetail.of(ledger.get_run(run_id), ledger.now(), private=private)
    )


@read_route(
    "/runs/{run_id}/items",
    response_model=ItemPage,
    responses=responses(400, 404),
    summary="A run's items, in recording order",
)
async def run_items(
    calls: Calls,
    run_id: RunId,
    status: Annotated[ItemStatus | None, Query()] = None,
    group: Name = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Cursor = None,
) -> Response:
    def work(ledger: Ledger) -> ItemPage:
        result = ledger.list_items(run_id, status=status, group=group, limit=limit, cursor=cursor)
        return ItemPage(data=[ItemOut.of(i) for i in result.items], next_cursor=result.next_cursor)

    return await calls.json(work)


@read_route(
    "/runs/{run_id}/groups",
    response_model=GroupList,
    responses=responses(404),
    summary="A run's item groups: counts by status and where each was found",
)
async def run_groups(calls: Calls, run_id: RunId) -> Response:
    def work(ledger: Ledger) -> GroupList:
        ledger.get_run(run_id)  # an unknown run is a 404, not an empty list
        return GroupList(data=[GroupOut.of(g) for g in ledger.group_summary(run_id)])

    return await calls.json(work)


@write_route(
    "/runs/{run_id}/cancel",
    response_model=RunDetail,
    responses=responses(404, 409),
    summary="Cancel a pending run, or ask a running one to stop",
)
async def cancel_run(
    calls: Calls,
    run_id: RunId,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> Response:
    reason = body.reason if body else None

    def work(ledger: Ledger) -> RunDetail:
        return RunDetail.of(ledger.cancel(run_id, by="api", reason=reason), ledger.now())

    return await calls.json(work)


# -- jobs ------------------------------------------------------------------


@read_route("/jobs", response_model=JobList, summary="Every job's state")
async def list_jobs(calls: Calls, provider: Name = None) -> Response:
    return await calls.json(
        lambda ledger: JobList(data=[JobOut.of(s) for s in ledger.job_states(provider)])
    )


# Before "/jobs/{key:path}", which would take ".../carried" as part of a key.
@read_route(
    "/jobs/{key:path}/carried",
    response_model=CarriedOut,
    responses=responses(404),
    summary="What a job owes: failed items and slices carried to its next runs, and those given up",
)
async def job_carried(calls: Calls, key: JobKey) -> Response:
    return await calls.json(lambda ledger: CarriedOut.of(key, ledger.carried(key)))


@write_route(
    "/jobs/{key:path}/carried/{entry_id}/forget",
    response_model=ForgetOut,
    responses=responses(404),
    summary="Drop one entry a job owes (an operator fixed it by hand)",
)
async def forget_carried(
    calls: Calls, key: JobKey, entry_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> Response:
    def work(ledger: Ledger) -> ForgetOut:
        ledger.forget_carried(key, entry_id, by="api")
        return ForgetOut(job=key, forgotten=entry_id)

    return await calls.json(work)


@read_route(
    "/jobs/{key:path}",
    response_model=JobDetail,
    responses=responses(404),
    summary="A job's state and recent runs (keys may contain ':' and '/')",
)
async def get_job(
    calls: Calls, key: str, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10
) -> Response:
    def work(ledger: Ledger) -> JobDetail:
        state = ledger.job_state(key)
        now = ledger.now()
        recent = ledger.list_runs(job=key, limit=limit).items
        return JobDetail(
            **JobOut.fields_of(state), recent_runs=[RunSummary.of(r, now) for r in recent]
        )

    return await calls.json(work)


# -- providers ---------------------------------------------------------------


@read_route("/providers", response_model=ProviderList, summary="Providers and their pauses")
async def list_providers(calls: Calls) -> Response:
    return await calls.json(
        lambda ledger: ProviderList(data=[ProviderOut.of(p) for p in ledger.providers()])
    )


@write_route(
    "/providers/{name:path}/pause",
    response_model=PauseOut,
    responses=responses(404),
    summary="Pause a provider: the runner skips its jobs until the pause ends",
)
async def pause_provider(calls: Calls, name: str, body: PauseRequest) -> Response:
    def work(ledger: Ledger) -> PauseOut:
        pause = ledger.pause(
            name,
            until=body.until,
            for_=body.for_,
            reason=body.reason,
            by="api",
            create=body.create,
        )
        out = PauseOut.of(pause)
        assert out is not None
        return out

    return await calls.json(work)


@write_route(
    "/providers/{name:path}/resume",
    response_model=ResumeOut,
    summary="End a provider's pause (idempotent)",
)
async def resume_provider(calls: Calls, name: str) -> Response:
    return await calls.json(lambda ledger: ResumeOut(provider=name, resumed=ledger.resume(name)))


# -- health ------------------------------------------------------------------


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthProblem, "description": "Unhealthy (see detail)"}},
    summary="Database reachable, stale runs, when the reaper last ran",
)
async def health(calls: Calls) -> Response:
    return await calls.json(_healthy)


def _healthy(ledger: Ledger) -> HealthOut:
    result = HealthOut.of(ledger.health())
    if result.status != "ok":
        fields = result.model_dump(
            mode="json", include={"database", "stale_runs", "last_reap_at", "checked_at"}
        )
        raise ProblemError(503, result.detail, slug="unhealthy", extra=fields)
    return result


# -- issue 18: incidents -------------------------------------------------------


@read_route("/incidents", response_model=IncidentList, summary="Incidents, newest first")
async def list_incidents(
    calls: Calls,
    job: Annotated[str | None, Query(max_length=255, description="Only this job's.")] = None,
    open: Annotated[bool, Query(description="Only the open ones.")] = False,
    limit: Limit = 100,
) -> Response:
    return await calls.json(
        lambda ledger: IncidentList(
            data=[IncidentOut.of(i) for i in ledger.incidents(job, open_only=open, limit=limit)]
        )
    )
