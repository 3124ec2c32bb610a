"""Backfills on the API (issue 17): ``POST /api/jobs/{key}/backfills``,
``GET /api/backfills``, ``GET /api/backfills/{id}``, ``POST
/api/backfills/{id}/resume`` and ``/cancel``. The routes join the API's
router (:mod:`runtrack.web.api`) when this module is imported, before the
app includes it; the API token is required for the POSTs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from runtrack import vocabulary
from runtrack.backfills import BackfillRecord, BackfillState
from runtrack.ledger import Ledger
from runtrack.web.api import MAX_LIMIT, Calls, JobKey, read_route, write_route
from runtrack.web.problems import responses

__all__ = ["BackfillList", "BackfillOut", "BackfillRequest"]

BY = "api"
BackfillId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The backfill's id.")]


class BackfillRequest(BaseModel):
    """Body of POST /jobs/{key}/backfills."""

    model_config = ConfigDict(extra="forbid")

    start: datetime = Field(description="The range's start (naive: UTC), included.")
    end: datetime = Field(description="The range's end, excluded; after start.")
    every: str = Field(
        "1d", max_length=32, description="Each window's length: 1h, 1d, 1w (whole seconds)."
    )
    max_parallel: int | None = Field(
        None, ge=1, le=10_000, description="At most this many of its runs at once."
    )


class ProgressOut(BaseModel):
    done: int = Field(description="Windows whose latest run succeeded or ended partial.")
    failed: int = Field(description="Failed, cancelled or expired: resume queues them again.")
    queued: int
    running: int
    missing: int = Field(description="Windows with no run left (pruned): resume queues them.")


class BackfillOut(BaseModel):
    """A backfill: fixed windows tiling [start, end), one queued run each."""

    id: int
    job: str
    start: datetime
    end: datetime
    every_seconds: float
    windows: int
    max_parallel: int | None
    triggered_by: str
    created_at: datetime
    state: BackfillState = Field(description="running, done, failed or cancelled.")
    progress: ProgressOut

    @classmethod
    def of(cls, record: BackfillRecord) -> BackfillOut:
        return cls.model_validate(vocabulary.backfill(record))


class BackfillList(BaseModel):
    data: list[BackfillOut]


@write_route(
    "/jobs/{key:path}/backfills",
    response_model=BackfillOut,
    status_code=202,
    responses=responses(404),
    summary="Backfill a range of the job's past: one queued run per window",
)
async def create_backfill(calls: Calls, key: JobKey, body: BackfillRequest) -> Any:
    def work(ledger: Ledger) -> BackfillOut:
        record = ledger.backfill(
            key, body.start, body.end, every=body.every, by=BY, max_parallel=body.max_parallel
        )
        return BackfillOut.of(record)

    response = await calls.json(work)
    response.status_code = 202
    return response


@read_route("/backfills", response_model=BackfillList, summary="Backfills, newest first")
async def list_backfills(
    calls: Calls,
    job: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> Any:
    def work(ledger: Ledger) -> BackfillList:
        return BackfillList(
            data=[BackfillOut.of(b) for b in ledger.backfills(job=job, limit=limit)]
        )

    return await calls.json(work)


@read_route(
    "/backfills/{backfill_id}",
    response_model=BackfillOut,
    responses=responses(404),
    summary="A backfill and its progress",
)
async def get_backfill(calls: Calls, backfill_id: BackfillId) -> Any:
    return await calls.json(lambda ledger: BackfillOut.of(ledger.get_backfill(backfill_id)))


@write_route(
    "/backfills/{backfill_id}/resume",
    response_model=BackfillOut,
    responses=responses(404),
    summary="Queue again the windows that failed, were cancelled or expired, or have no run",
)
async def resume_backfill(calls: Calls, backfill_id: BackfillId) -> Any:
    return await calls.json(
        lambda ledger: BackfillOut.of(ledger.resume_backfill(backfill_id, by=BY))
    )


@write_route(
    "/backfills/{backfill_id}/cancel",
    response_model=BackfillOut,
    responses=responses(404),
    summary="Cancel the backfill's queued runs (running ones finish)",
)
async def cancel_backfill(calls: Calls, backfill_id: BackfillId) -> Any:
    return await calls.json(
        lambda ledger: BackfillOut.of(ledger.cancel_backfill(backfill_id, by=BY))
    )
