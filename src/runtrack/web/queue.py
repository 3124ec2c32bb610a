"""Issue 17 on the API: ``POST /api/jobs/{key}/trigger`` (202 with the
queued run) and ``POST /api/runs/{id}/rerun`` (kept apart from
:mod:`runtrack.web.api`, on its router); the API token is required as for every POST."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body
from pydantic import BaseModel, ConfigDict, Field

from runtrack.ledger import Ledger
from runtrack.web.api import Calls, JobKey, RunId, write_route
from runtrack.web.problems import responses
from runtrack.web.schemas import RunDetail

__all__ = ["TriggerRequest"]

BY = "api"


class TriggerRequest(BaseModel):
    """Optional body of POST /jobs/{key}/trigger."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] | None = Field(None, description="The run's params (JSON object).")
    labels: dict[str, str] | None = Field(
        None, description='The run\'s labels, e.g. {"team": "growth"} (see GET /api/runs?label=).'
    )


@write_route(
    "/jobs/{key:path}/trigger",
    response_model=RunDetail,
    status_code=202,
    responses=responses(404),
    summary="Queue a run of the job now (a pending run with the same params is reused)",
)
async def trigger_job(
    calls: Calls, key: JobKey, body: Annotated[TriggerRequest | None, Body()] = None
) -> Any:
    params = body.params if body else None
    labels = body.labels if body else None

    def work(ledger: Ledger) -> RunDetail:
        run = ledger.trigger(key, params=params, by=BY, labels=labels)
        return RunDetail.of(run, ledger.now())

    response = await calls.json(work)
    response.status_code = 202
    return response


@write_route(
    "/runs/{run_id}/rerun",
    response_model=RunDetail,
    status_code=202,
    responses=responses(404),
    summary="Queue a run of the same job with the same params and window",
)
async def rerun_run(calls: Calls, run_id: RunId) -> Any:
    def work(ledger: Ledger) -> RunDetail:
        return RunDetail.of(ledger.rerun(run_id, by=BY), ledger.now())

    response = await calls.json(work)
    response.status_code = 202
    return response
