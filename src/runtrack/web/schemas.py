"""Request and response models of the HTTP API (they make /openapi.json).

Each response model has a ``of(...)`` constructor from the ledger's records;
it only reshapes data (the ledger computes everything, including progress
percent and ETA).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from runtrack import inputs
from runtrack.models import (
    GroupSummary,
    Health,
    ItemRecord,
    ItemStatus,
    JobState,
    NumberedPage,
    Page,
    PauseRecord,
    ProviderState,
    RunRecord,
    RunStatus,
)
from runtrack.web.problems import Problem


def _iso_only(value: object) -> object:
    """Pydantic would read a bare number as a Unix timestamp; the API speaks
    ISO 8601 only, so ``until=1700000000`` is a client error, not a date."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("expected an ISO 8601 date-time such as 2026-11-22T10:00:00Z")
    return value


#: A date-time given in ISO 8601 (never a bare Unix timestamp).
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]

__all__ = [
    "CancelRequest",
    "GroupList",
    "GroupOut",
    "HealthOut",
    "HealthProblem",
    "ItemOut",
    "ItemPage",
    "JobDetail",
    "JobList",
    "JobOut",
    "NumberedRunPage",
    "PauseOut",
    "PauseRequest",
    "ProviderList",
    "ProviderOut",
    "ResumeOut",
    "RunDetail",
    "RunList",
    "RunPage",
    "RunSummary",
]

MAX_TEXT = 2000


def _seconds(delta: Any) -> float | None:
    return None if delta is None else delta.total_seconds()


class WindowOut(BaseModel):
    """The slice of source data a run covers: ``[start, end)``."""

    start: datetime | None = Field(description="null for a job's first run")
    end: datetime | None


class ProgressOut(BaseModel):
    done: int = Field(description="Units of work processed.")
    total: int | None = Field(description="Units declared with set_total (null if never).")
    percent: float | None = Field(description="done / total, 0-100.")
    eta_seconds: float | None = Field(
        description="Time left at the run's average pace; only for running runs."
    )


class ItemTallies(BaseModel):
    success: int
    not_found: int
    skipped: int
    error: int


class RunSummary(BaseModel):
    """A run in a listing."""

    id: int
    uid: str
    job: str
    provider: str | None
    status: RunStatus
    attempt: int
    triggered_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_seconds: float | None = Field(description="finished_at - started_at")
    progress: ProgressOut
    items: ItemTallies
    error_type: str | None
    error_message: str | None

    @classmethod
    def fields_of(cls, run: RunRecord, now: datetime) -> dict[str, Any]:
        return {
            "id": run.id,
            "uid": run.uid,
            "job": run.job,
            "provider": run.provider,
            "status": run.status,
            "attempt": run.attempt,
            "triggered_by": run.triggered_by,
            "created_at": run.created_at,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "heartbeat_at": run.heartbeat_at,
            "duration_seconds": _seconds(run.duration),
            # Plain dicts, validated into the nested models with the rest: a
            # page of runs is then one validation call, not three per run.
            "progress": {
                "done": run.progress_done,
                "total": run.progress_total,
                "percent": run.percent,
                "eta_seconds": _seconds(run.eta(now)),
            },
            "items": run.items,
            "error_type": run.error_type,
            "error_message": run.error_message,
        }

    @classmethod
    def of(cls, run: RunRecord, now: datetime) -> RunSummary:
        return cls(**cls.fields_of(run, now))


class ErrorOut(BaseModel):
    type: str | None
    message: str | None
    stack: str | None
    details: dict[str, Any] | None


class CancelOut(BaseModel):
    requested_at: datetime | None
    requested_by: str | None
    reason: str | None


class GroupsOut(BaseModel):
    found: int | None = Field(description="Groups with at least one successful item.")
    missing: int | None = Field(description="Groups whose items all failed or were not found.")


class RunDetail(RunSummary):
    """One run with everything recorded about it."""

    retry_of: int | None
    params: dict[str, Any] | None
    host: str | None
    pid: int | None
    worker_id: str | None
    counters: dict[str, int | float]
    window: WindowOut
    checkpoint: Any = Field(description="The JSON cursor the run saved last.")
    error: ErrorOut | None
    cancel: CancelOut | None
    groups: GroupsOut
    notes: list[str]

    @classmethod
    def of(cls, run: RunRecord, now: datetime) -> RunDetail:
        error = None
        if run.error_type or run.error_message:
            error = ErrorOut(
                type=run.error_type,
                message=run.error_message,
                stack=run.error_stack,
                details=run.error_details,
            )
        cancel = None
        if run.cancel_requested_at is not None:
            cancel = CancelOut(
                requested_at=run.cancel_requested_at,
                requested_by=run.cancel_requested_by,
                reason=run.cancel_reason,
            )
        return cls(
            **cls.fields_of(run, now),
            retry_of=run.retry_of,
            params=run.params,
            host=run.host,
            pid=run.pid,
            worker_id=run.worker_id,
            counters=run.counters,
            window=WindowOut(start=run.window_start, end=run.window_end),
            checkpoint=run.checkpoint,
            error=error,
            cancel=cancel,
            groups=GroupsOut(found=run.groups_found, missing=run.groups_missing),
            notes=run.notes,
        )


class RunPage(BaseModel):
    """One page of runs, newest first; pass ``next_cursor`` back as ``cursor``."""

    data: list[RunSummary]
    next_cursor: str | None = Field(description="null on the last page")

    @classmethod
    def of(cls, page: Page[RunRecord], now: datetime) -> RunPage:
        data = [RunSummary.fields_of(r, now) for r in page.items]
        return cls.model_validate({"data": data, "next_cursor": page.next_cursor})


class Pagination(BaseModel):
    page: int
    limit: int
    total: int = Field(description="Matching runs, counted up to the first 10,000")
    totalPages: int  # the name callers of page-numbered APIs expect
    totalExact: bool = Field(
        description="False when more than `total` runs match: page numbers reach the "
        "first 10,000; next_cursor (without page=) goes further"
    )


class NumberedRunPage(BaseModel):
    """A page of runs by number (``page=``); the cursor scales better."""

    data: list[RunSummary]
    pagination: Pagination

    @classmethod
    def of(cls, page: NumberedPage[RunRecord], now: datetime) -> NumberedRunPage:
        return cls(
            data=[RunSummary.of(r, now) for r in page.items],
            pagination=Pagination(
                page=page.page,
                limit=page.limit,
                total=page.total,
                totalPages=page.total_pages,
                totalExact=page.total_exact,
            ),
        )


class RunList(BaseModel):
    data: list[RunSummary]


class ItemOut(BaseModel):
    """One per-item outcome of a run."""

    id: int
    run_id: int
    key: str
    status: ItemStatus
    group: str | None
    source: str | None
    data: Any
    error: str | None
    recorded_at: datetime

    @classmethod
    def of(cls, item: ItemRecord) -> ItemOut:
        return cls.model_validate(item, from_attributes=True)


class ItemPage(BaseModel):
    """One page of a run's items in recording order."""

    data: list[ItemOut]
    next_cursor: str | None


class GroupOut(BaseModel):
    group: str
    counts: dict[str, int] = Field(description="Items of the group by status.")
    found: bool
    found_in: list[str] = Field(description="Sources where an item of the group succeeded.")

    @classmethod
    def of(cls, group: GroupSummary) -> GroupOut:
        return cls.model_validate(group, from_attributes=True)


class GroupList(BaseModel):
    data: list[GroupOut]


class PauseOut(BaseModel):
    """A provider pause in force."""

    provider: str
    until: datetime
    reason: str
    paused_at: datetime
    paused_by: str | None

    @classmethod
    def of(cls, pause: PauseRecord | None) -> PauseOut | None:
        return None if pause is None else cls.model_validate(pause, from_attributes=True)


class LastRunOut(BaseModel):
    id: int
    status: RunStatus | None
    finished_at: datetime | None


class LastSuccessOut(BaseModel):
    run_id: int
    at: datetime | None


class JobOut(BaseModel):
    """A job's state."""

    key: str
    provider: str | None
    created_at: datetime
    last_run: LastRunOut | None
    last_success: LastSuccessOut | None
    consecutive_failures: int = Field(description="Failed runs in a row (the failure streak).")
    watermark: datetime | None = Field(description="Where the next run's window starts.")
    checkpoint: Any
    active_runs: int
    paused: PauseOut | None = Field(description="The pause of the job's provider, if any.")

    @classmethod
    def fields_of(cls, state: JobState) -> dict[str, Any]:
        job = state.job
        last_run = last_success = None
        if job.last_run_id is not None:
            last_run = LastRunOut(
                id=job.last_run_id, status=job.last_status, finished_at=job.last_finished_at
            )
        if job.last_success_run_id is not None:
            last_success = LastSuccessOut(run_id=job.last_success_run_id, at=job.last_success_at)
        return {
            "key": job.key,
            "provider": job.provider,
            "created_at": job.created_at,
            "last_run": last_run,
            "last_success": last_success,
            "consecutive_failures": job.consecutive_failures,
            "watermark": job.watermark,
            "checkpoint": job.checkpoint,
            "active_runs": state.active_runs,
            "paused": PauseOut.of(state.pause),
        }

    @classmethod
    def of(cls, state: JobState) -> JobOut:
        return cls(**cls.fields_of(state))


class JobList(BaseModel):
    data: list[JobOut]


class JobDetail(JobOut):
    """A job's state and its latest runs."""

    recent_runs: list[RunSummary]


class ProviderOut(BaseModel):
    name: str
    jobs: int = Field(description="Jobs of this provider.")
    paused: PauseOut | None

    @classmethod
    def of(cls, p: ProviderState) -> ProviderOut:
        return cls(name=p.name, jobs=p.jobs, paused=PauseOut.of(p.pause))


class ProviderList(BaseModel):
    data: list[ProviderOut]


class CancelRequest(BaseModel):
    """Optional body of POST /runs/{id}/cancel."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=MAX_TEXT, description="Why (kept on the run).")


class PauseRequest(BaseModel):
    """Body of POST /providers/{name}/pause: exactly one of duration or until."""

    model_config = ConfigDict(extra="forbid")

    duration: str | None = Field(
        None, max_length=32, description='How long: "90s", "15m", "2h", "1d", or seconds.'
    )
    until: IsoDatetime | None = Field(None, description="When the pause ends (ISO 8601).")
    reason: str = Field(min_length=1, max_length=MAX_TEXT, description="Why, for the operators.")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            inputs.duration("duration", value)  # InvalidInput is a ValueError: a 422
        return value

    @model_validator(mode="after")
    def _one_end(self) -> PauseRequest:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give exactly one of duration or until")
        return self


class ResumeOut(BaseModel):
    provider: str
    resumed: bool = Field(description="Whether a pause was in force (resuming is idempotent).")


class HealthOut(BaseModel):
    """The answer of GET /health when healthy."""

    status: Literal["ok", "unhealthy"]
    database: bool = Field(description="Whether the database answered.")
    stale_runs: int | None = Field(description="Active runs past the stale threshold.")
    last_reap_at: datetime | None = Field(description="When a reaper last ran (any process).")
    checked_at: datetime | None
    detail: str

    @classmethod
    def of(cls, health: Health) -> HealthOut:
        return cls(
            status="ok" if health.healthy else "unhealthy",
            database=health.database,
            stale_runs=health.stale_runs,
            last_reap_at=health.last_reap_at,
            checked_at=health.checked_at,
            detail=health.reason,
        )


class HealthProblem(Problem):
    """GET /health when unhealthy: a problem document with the health fields."""

    database: bool
    stale_runs: int | None
    last_reap_at: datetime | None
    checked_at: datetime | None
