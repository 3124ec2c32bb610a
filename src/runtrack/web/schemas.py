"""Request and response models of the HTTP API (they make /openapi.json).

Each response model has a ``of(...)`` constructor from the ledger's records:
it validates the shape :mod:`runtrack.vocabulary` gives the record, the one
the CLI's ``--json`` prints too (the ledger computes everything, including
progress percent and ETA). Every name is snake_case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from runtrack import inputs, vocabulary
from runtrack.models import (
    GroupSummary,
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
from runtrack.overview import Health
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


class ErrorSummaryOut(BaseModel):
    type: str | None = Field(description="The exception class, or heartbeat_timeout, shutdown...")
    message: str | None


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
    counters: dict[str, int | float]
    items: ItemTallies
    error: ErrorSummaryOut | None = Field(description="Why the run failed; null if it did not.")
    labels: dict[str, str] = Field(description="The run's labels, name -> value ({} without).")

    @classmethod
    def fields_of(cls, run: RunRecord, now: datetime) -> dict[str, Any]:
        # Plain dicts, validated into the nested models with the rest: a
        # page of runs is then one validation call, not three per run.
        return vocabulary.run_summary(run, now)

    @classmethod
    def of(cls, run: RunRecord, now: datetime) -> RunSummary:
        return cls.model_validate(cls.fields_of(run, now))


class ErrorOut(ErrorSummaryOut):
    stack: str | None = Field(description="Shown to signed-in users (or RUNTRACK_PUBLIC_ERRORS).")
    details: dict[str, Any] | None = Field(description="Shown as the stack is.")


class CancelOut(BaseModel):
    requested_at: datetime | None
    requested_by: str | None
    reason: str | None


class GroupsOut(BaseModel):
    found: int | None = Field(description="Groups with at least one successful item.")
    missing: int | None = Field(description="Groups whose items all failed or were not found.")


class RunDetail(RunSummary):
    """One run with everything recorded about it."""

    error: ErrorOut | None = Field(description="Why the run failed; null if it did not.")
    retry_of: int | None
    rerun_of: int | None = Field(None, description="The run this one re-runs.")
    backfill_id: int | None = Field(None, description="The backfill this run is a window of.")
    params: dict[str, Any] | None
    host: str | None
    pid: int | None
    worker_id: str | None
    window: WindowOut
    moves_watermark: bool = Field(description="Whether ending well moves the job's watermark.")
    checkpoint: Any = Field(description="The JSON cursor the run saved last.")
    cancel: CancelOut | None
    groups: GroupsOut
    notes: list[str]
    retry_policy: dict[str, Any] | None = Field(description="The runner's policy of the attempt.")

    @classmethod
    def of(cls, run: RunRecord, now: datetime, *, private: bool = True) -> RunDetail:
        return cls.model_validate(vocabulary.run_detail(run, now, private=private))


class RunPage(BaseModel):
    """One page of runs, newest first; pass ``next_cursor`` back as ``cursor``."""

    data: list[RunSummary]
    next_cursor: str | None = Field(description="null on the last page")

    @classmethod
    def of(cls, page: Page[RunRecord], now: datetime) -> RunPage:
        data = (vocabulary.run_summary(r, now) for r in page.items)
        return cls.model_validate(vocabulary.cursor_page(data, page.next_cursor))


class Pagination(BaseModel):
    page: int
    limit: int
    total: int = Field(description="Matching runs, counted up to the first 10,000")
    total_pages: int
    total_exact: bool = Field(
        description="False when more than `total` runs match: page numbers reach the "
        "first 10,000; next_cursor (without page=) goes further"
    )


class NumberedRunPage(BaseModel):
    """A page of runs by number (``page=``); the cursor scales better."""

    data: list[RunSummary]
    pagination: Pagination

    @classmethod
    def of(cls, page: NumberedPage[RunRecord], now: datetime) -> NumberedRunPage:
        data = (vocabulary.run_summary(r, now) for r in page.items)
        return cls.model_validate(vocabulary.numbered_page(data, page))


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
        return cls.model_validate(vocabulary.item(item))


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
        return cls.model_validate(vocabulary.group(group))


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
        shape = vocabulary.pause(pause)
        return None if shape is None else cls.model_validate(shape)


class RunPointerOut(BaseModel):
    """A job's last run, or its last successful run."""

    run_id: int
    status: RunStatus | None
    finished_at: datetime | None


class JobOut(BaseModel):
    """A job's state."""

    key: str
    provider: str | None
    created_at: datetime
    last_run: RunPointerOut | None
    last_success: RunPointerOut | None
    consecutive_failures: int = Field(description="Failed runs in a row (the failure streak).")
    watermark: datetime | None = Field(description="Where the next run's window starts.")
    checkpoint: Any
    next_due_at: datetime | None = Field(description="The runner's next scheduled tick.")
    schedule: str | None = Field(description="The schedule its runners registered.")
    schedule_tz: str | None = Field(description="The schedule's IANA zone (null: UTC).")
    next_due_local: str | None = Field(description="next_due_at on the schedule's zone clock.")
    ticks_skipped: int = Field(
        description="Due ticks the runner skipped: the job or its provider was at its limit."
    )
    last_skipped_at: datetime | None = Field(description="When the last tick was skipped.")
    last_skip_reason: str | None = Field(description="Why the last tick was skipped.")
    active_runs: int = Field(description="Runs pending or running.")
    running_runs: int = Field(description="Of the active runs, those running (the rest queued).")
    paused: PauseOut | None = Field(description="The pause of the job's provider, if any.")

    @classmethod
    def fields_of(cls, state: JobState) -> dict[str, Any]:
        return vocabulary.job(state)

    @classmethod
    def of(cls, state: JobState) -> JobOut:
        return cls.model_validate(cls.fields_of(state))


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
        return cls.model_validate(vocabulary.provider(p))


class ProviderList(BaseModel):
    data: list[ProviderOut]


class CancelRequest(BaseModel):
    """Optional body of POST /runs/{id}/cancel."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=MAX_TEXT, description="Why (kept on the run).")


class PauseRequest(BaseModel):
    """Body of POST /providers/{name}/pause: exactly one of ``for`` or ``until``
    (``for``, as in the CLI's ``--for`` and the library's ``for_``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    for_: str | None = Field(
        None,
        alias="for",
        max_length=32,
        description='How long, with a unit: "90s", "15m", "2h", "1d".',
    )
    until: IsoDatetime | None = Field(None, description="When the pause ends (ISO 8601).")
    reason: str = Field(min_length=1, max_length=MAX_TEXT, description="Why, for the operators.")
    create: bool = Field(
        False, description="Pause a provider that no job uses yet (otherwise a 404)."
    )

    @field_validator("for_")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            inputs.duration("for", value)  # InvalidInput is a ValueError: a 422
        return value

    @model_validator(mode="after")
    def _one_end(self) -> PauseRequest:
        if (self.for_ is None) == (self.until is None):
            raise ValueError("give exactly one of for or until")
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
