"""Issue 17 on the API: ``GET /api/workers`` and its response models (kept
apart from :mod:`runtrack.web.api` and :mod:`runtrack.web.schemas`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query, Response
from pydantic import BaseModel, Field

from runtrack import vocabulary
from runtrack.web.api import Calls, read_route
from runtrack.workers import WorkerRecord, WorkerState

__all__ = ["WorkerList", "WorkerOut"]


class ServedJobOut(BaseModel):
    key: str
    schedule: str = Field(description="As registered: \"cron '30 2 * * *' Europe/Madrid\".")
    tz: str | None = Field(description="The schedule's IANA zone (null: UTC).")


class WorkerRunOut(BaseModel):
    run_id: int
    job: str
    started_at: datetime | None
    heartbeat_at: datetime | None


class WorkerOut(BaseModel):
    """A runner process, and what it is running now."""

    id: str = Field(description="The worker id its runs record (runs.worker_id).")
    state: WorkerState = Field(
        description="live; stopped (gracefully); dead (not seen for stale_after)."
    )
    host: str
    pid: int
    version: str = Field(description="The runtrack version it runs.")
    concurrency: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    jobs: list[ServedJobOut] = Field(description="The jobs it serves, with their schedules.")
    running: list[WorkerRunOut]

    @classmethod
    def of(cls, record: WorkerRecord) -> WorkerOut:
        return cls.model_validate(vocabulary.worker(record))


class WorkerList(BaseModel):
    data: list[WorkerOut]


Recent = Annotated[
    str,
    Query(
        max_length=32,
        description="Also list workers gone (stopped or dead) within this age: 1h, 1d, 7d.",
    ),
]


@read_route(
    "/workers",
    response_model=WorkerList,
    summary="Live workers and recently gone ones, with what each is running",
)
async def list_workers(calls: Calls, recent: Recent = "1d") -> Response:
    return await calls.json(
        lambda ledger: WorkerList(data=[WorkerOut.of(w) for w in ledger.workers(recent=recent)])
    )
