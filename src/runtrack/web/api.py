"""The JSON API under ``/api``: each route is a thin call into the ledger.

Routes are plain ``def`` functions: the ledger is synchronous, and FastAPI
runs them in its thread pool. Validation happens twice on purpose: the
declared constraints (``ge``, ``le``, enums) document the API and reject
malformed requests early; the ledger still checks everything it is given.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from runtrack.errors import InvalidInput
from runtrack.ledger import Ledger
from runtrack.models import ItemStatus, RunStatus
from runtrack.web import auth
from runtrack.web.problems import ProblemError, responses
from runtrack.web.schemas import (
    CancelRequest,
    GroupList,
    GroupOut,
    HealthOut,
    HealthProblem,
    IsoDatetime,
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

__all__ = ["MAX_LIMIT", "router"]

#: Largest page size; a larger ``limit`` answers 422 (it is not clamped, so a
#: client never silently gets fewer rows than it asked for).
MAX_LIMIT = 200
MAX_ID = 2**63 - 1  # BIGINT: a larger id cannot exist, and drivers reject it

READ = responses(401, 422, 503)
WRITE = responses(400, 401, 403, 422, 503)

#: Everything under /api. Health is open (load balancers send no token);
#: reads need the read token if one is configured; writes need the API token,
#: checked before the request body is read.
router = APIRouter()
reads = APIRouter(dependencies=[Depends(auth.require_read)], responses=READ)
writes = APIRouter(dependencies=[Depends(auth.require_write)], responses=WRITE)


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(_ledger)]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="The run's id.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="The next_cursor of the previous page (opaque)."),
]
Name = Annotated[str | None, Query(max_length=255)]


# -- runs ------------------------------------------------------------------


@reads.get(
    "/runs",
    response_model=RunPage | NumberedRunPage,
    responses=responses(400),
    summary="List runs, newest first",
)
def list_runs(
    ledger: LedgerDep,
    job: Name = None,
    provider: Name = None,
    status: Annotated[list[RunStatus] | None, Query(description="Repeatable.")] = None,
    triggered_by: Name = None,
    since: Annotated[IsoDatetime | None, Query(description="created_at >= since, ISO 8601")] = None,
    until: Annotated[IsoDatetime | None, Query(description="created_at < until, ISO 8601")] = None,
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
) -> RunPage | NumberedRunPage:
    filters: dict[str, Any] = {
        "job": job,
        "provider": provider,
        "status": status,
        "triggered_by": triggered_by,
        "since": since,
        "until": until,
    }
    now = ledger.now()
    if page is None:
        result = ledger.list_runs(limit=limit, cursor=cursor, **filters)
    elif cursor is None:
        numbered = ledger.list_runs_by_page(page, limit=limit, **filters)
        return NumberedRunPage.of(numbered, now)
    else:
        raise InvalidInput("page", "cannot be combined with cursor", "cursor or page")
    return RunPage(
        data=[RunSummary.of(r, now) for r in result.items], next_cursor=result.next_cursor
    )


@reads.get("/runs/recent", response_model=RunList, summary="The latest runs")
def recent_runs(ledger: LedgerDep, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 5) -> RunList:
    now = ledger.now()
    return RunList(data=[RunSummary.of(r, now) for r in ledger.recent_runs(limit)])


@reads.get(
    "/runs/status/{status}",
    response_model=RunPage,
    responses=responses(400),
    summary="List runs in one status",
)
def runs_in_status(
    ledger: LedgerDep, status: RunStatus, limit: Limit = 20, cursor: Cursor = None
) -> RunPage:
    now = ledger.now()
    result = ledger.list_runs(status=status, limit=limit, cursor=cursor)
    return RunPage(
        data=[RunSummary.of(r, now) for r in result.items], next_cursor=result.next_cursor
    )


@reads.get("/runs/{run_id}", response_model=RunDetail, responses=responses(404), summary="A run")
def get_run(ledger: LedgerDep, run_id: RunId) -> RunDetail:
    return RunDetail.of(ledger.get_run(run_id), ledger.now())


@reads.get(
    "/runs/{run_id}/items",
    response_model=ItemPage,
    responses=responses(400, 404),
    summary="A run's items, in recording order",
)
def run_items(
    ledger: LedgerDep,
    run_id: RunId,
    status: Annotated[ItemStatus | None, Query()] = None,
    group: Name = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Cursor = None,
) -> ItemPage:
    result = ledger.list_items(run_id, status=status, group=group, limit=limit, cursor=cursor)
    return ItemPage(data=[ItemOut.of(i) for i in result.items], next_cursor=result.next_cursor)


@reads.get(
    "/runs/{run_id}/groups",
    response_model=GroupList,
    responses=responses(404),
    summary="A run's item groups: counts by status and where each was found",
)
def run_groups(ledger: LedgerDep, run_id: RunId) -> GroupList:
    ledger.get_run(run_id)  # an unknown run is a 404, not an empty list
    return GroupList(data=[GroupOut.of(g) for g in ledger.group_summary(run_id)])


@writes.post(
    "/runs/{run_id}/cancel",
    response_model=RunDetail,
    responses=responses(404, 409),
    summary="Cancel a pending run, or ask a running one to stop",
)
def cancel_run(
    ledger: LedgerDep,
    run_id: RunId,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> RunDetail:
    reason = body.reason if body else None
    return RunDetail.of(ledger.cancel(run_id, by="api", reason=reason), ledger.now())


# -- jobs ------------------------------------------------------------------


@reads.get("/jobs", response_model=JobList, summary="Every job's state")
def list_jobs(ledger: LedgerDep, provider: Name = None) -> JobList:
    return JobList(data=[JobOut.of(s) for s in ledger.job_states(provider)])


@reads.get(
    "/jobs/{key:path}",
    response_model=JobDetail,
    responses=responses(404),
    summary="A job's state and recent runs (keys may contain ':' and '/')",
)
def get_job(
    ledger: LedgerDep, key: str, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10
) -> JobDetail:
    state = ledger.job_state(key)
    now = ledger.now()
    recent = ledger.list_runs(job=key, limit=limit).items
    return JobDetail(**JobOut.fields_of(state), recent_runs=[RunSummary.of(r, now) for r in recent])


# -- providers ---------------------------------------------------------------


@reads.get("/providers", response_model=ProviderList, summary="Providers and their pauses")
def list_providers(ledger: LedgerDep) -> ProviderList:
    return ProviderList(data=[ProviderOut.of(p) for p in ledger.providers()])


@writes.post(
    "/providers/{name:path}/pause",
    response_model=PauseOut,
    summary="Pause a provider: the runner skips its jobs until the pause ends",
)
def pause_provider(ledger: LedgerDep, name: str, body: PauseRequest) -> PauseOut:
    pause = ledger.pause(name, until=body.until, for_=body.duration, reason=body.reason, by="api")
    out = PauseOut.of(pause)
    assert out is not None
    return out


@writes.post(
    "/providers/{name:path}/resume",
    response_model=ResumeOut,
    summary="End a provider's pause (idempotent)",
)
def resume_provider(ledger: LedgerDep, name: str) -> ResumeOut:
    return ResumeOut(provider=name, resumed=ledger.resume(name))


# -- health ------------------------------------------------------------------


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthProblem, "description": "Unhealthy (see detail)"}},
    summary="Database reachable, stale runs, when the reaper last ran",
)
def health(ledger: LedgerDep) -> HealthOut:
    result = HealthOut.of(ledger.health())
    if result.status != "ok":
        fields = result.model_dump(
            mode="json", include={"database", "stale_runs", "last_reap_at", "checked_at"}
        )
        raise ProblemError(503, result.detail, slug="unhealthy", extra=fields)
    return result


router.include_router(reads)
router.include_router(writes)
