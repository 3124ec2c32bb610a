"""Frozen records and the run state machine.

Everything here is plain data: the store builds these records from rows and the
ledger hands them to callers. Nothing in this module touches a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = [
    "ACTIVE",
    "ALLOWED_FROM",
    "DEFAULT_MAX_CARRY_ATTEMPTS",
    "GOOD",
    "ITEM_STATUSES",
    "RATE_LIMITED",
    "TERMINAL",
    "TIMEOUT",
    "Carried",
    "CarriedItem",
    "CarriedSlice",
    "CarryState",
    "GroupSummary",
    "ItemRecord",
    "ItemStatus",
    "JobRecord",
    "JobState",
    "JobTally",
    "NumberedPage",
    "OnPartial",
    "Page",
    "PauseRecord",
    "ProviderState",
    "PruneResult",
    "RunBrief",
    "RunOutcome",
    "RunRecord",
    "RunStatus",
    "Window",
]


class RunStatus(StrEnum):
    """The states of a run (DESIGN.md "Run states")."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE: frozenset[RunStatus] = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
TERMINAL: frozenset[RunStatus] = frozenset(
    {RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED}
)
#: Statuses that advance a job's watermark and checkpoint.
GOOD: frozenset[RunStatus] = frozenset({RunStatus.SUCCESS, RunStatus.PARTIAL})

#: ``error_type`` of a run ended by its job's ``timeout`` (it ends ``failed``).
TIMEOUT = "timeout"
#: ``error_type`` of a run ended by a rate limit (its provider was paused).
RATE_LIMITED = "rate_limited"


#: For each target status, the statuses a run may be in to move there. The store
#: turns this table into ``WHERE status IN (...)`` so that a transition is one
#: conditional statement.
ALLOWED_FROM: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset(),
    RunStatus.RUNNING: frozenset({RunStatus.PENDING}),
    RunStatus.SUCCESS: frozenset({RunStatus.RUNNING}),
    RunStatus.PARTIAL: frozenset({RunStatus.RUNNING}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING, RunStatus.PENDING}),
    RunStatus.CANCELLED: frozenset({RunStatus.RUNNING, RunStatus.PENDING}),
}


class ItemStatus(StrEnum):
    """The outcome of one item inside a run."""

    SUCCESS = "success"
    NOT_FOUND = "not_found"
    SKIPPED = "skipped"
    ERROR = "error"


ITEM_STATUSES: tuple[ItemStatus, ...] = tuple(ItemStatus)


class OnPartial(StrEnum):
    """What a run that ends ``partial`` does with what failed (guarantee 5)."""

    #: The watermark moves; failed items and slices are carried to the next runs.
    CARRY = "carry"
    #: The watermark stays (the next run covers the window again); nothing carried.
    HOLD = "hold"
    #: The watermark moves and what failed is forgotten (before carrying existed).
    ADVANCE = "advance"


class CarryState(StrEnum):
    """An entry a job owes: handed to its runs, or given up (kept, shown,
    never handed out again)."""

    OWED = "owed"
    GIVEN_UP = "given_up"


#: Runs that try a carried entry and fail before it is given up.
DEFAULT_MAX_CARRY_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Window:
    """The slice of source data a run covers: ``[start, end)``; ``start`` is
    ``None`` for a job's first run (everything up to ``end``)."""

    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as stored. Timestamps are timezone-aware UTC."""

    id: int
    uid: str
    job: str
    provider: str | None
    status: RunStatus
    attempt: int
    retry_of: int | None
    triggered_by: str
    params: dict[str, Any] | None
    host: str | None
    pid: int | None
    worker_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    cancel_reason: str | None
    counters: dict[str, int | float]
    progress_total: int | None
    progress_done: int
    window_start: datetime | None
    window_end: datetime | None
    moves_watermark: bool
    checkpoint: Any
    error_type: str | None
    error_message: str | None
    error_stack: str | None
    error_details: dict[str, Any] | None
    notes: list[str]
    items: dict[str, int]
    groups_found: int | None
    groups_missing: int | None
    retry_policy: dict[str, Any] | None
    on_partial: OnPartial = OnPartial.CARRY
    max_carry_attempts: int = DEFAULT_MAX_CARRY_ATTEMPTS
    #: Issue 17: the run this one re-runs (``ledger.rerun``); its backfill.
    rerun_of: int | None = None
    backfill_id: int | None = None
    #: Name -> value, as given at the start (``ledger.run(..., labels=...)``).
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> timedelta | None:
        """Finished minus started; ``None`` until both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end)

    @property
    def percent(self) -> float | None:
        """Processed share of the declared total, 0-100 (``None`` without a total)."""
        if not self.progress_total:
            return None
        return min(100.0, 100.0 * self.progress_done / self.progress_total)

    def eta(self, now: datetime) -> timedelta | None:
        """Time left for a running run at its average pace so far (``None``
        when it is not running, has no total or has processed nothing yet)."""
        total, done = self.progress_total, self.progress_done
        if self.status is not RunStatus.RUNNING or self.started_at is None:
            return None
        if not total or done <= 0 or done >= total:
            return None
        elapsed = max(now - self.started_at, timedelta(0))
        try:
            return elapsed * ((total - done) / done)
        except OverflowError:  # a declared total far beyond any pace: no estimate
            return None


@dataclass(frozen=True, slots=True)
class RunBrief:
    """A run in outline (no payload columns): for status strips and charts."""

    id: int
    job: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def duration(self) -> timedelta | None:
        """Finished minus started; ``None`` until both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """A finished run as its job's status strip keeps it (millisecond times)."""

    id: int
    status: RunStatus
    finished_at: datetime
    duration: timedelta | None
    #: ``"retried"`` (a failed attempt with a retry scheduled) or
    #: ``"rate_limited"`` (its provider was paused); ``None``: as ``status`` says.
    note: str | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's mutable state: last run pointers, failure streak, watermark."""

    key: str
    provider: str | None
    created_at: datetime
    last_run_id: int | None
    last_status: RunStatus | None
    last_finished_at: datetime | None
    last_success_at: datetime | None
    last_success_run_id: int | None
    consecutive_failures: int
    watermark: datetime | None
    checkpoint: Any
    #: The runner's next scheduled tick (``None`` until a runner schedules it).
    next_due_at: datetime | None = None
    #: The registered schedule (issue 17) and its IANA zone (``None``: UTC).
    schedule: str | None = None
    schedule_tz: str | None = None
    #: Issue 21: due ticks the runner skipped (the job or its provider was
    #: busy), and the last one's time (database clock) and reason.
    ticks_skipped: int = 0
    last_skipped_at: datetime | None = None
    last_skip_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ItemRecord:
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


@dataclass(frozen=True, slots=True)
class CarriedItem:
    """An item a job owes: it ended ``error`` in run ``first_run`` and has not
    succeeded since. ``attempts``: its first run, and each good run offered
    it that did not resolve it; ``last_error``: the latest failure's text."""

    id: int
    job: str
    key: str
    group: str | None
    source: str | None
    data: Any
    first_run: int
    last_run: int
    attempts: int
    last_error: str | None
    state: CarryState
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CarriedSlice:
    """A slice ``[start, end)`` of a window a run could not fetch
    (``run.failed_slice``), owed until a run it is handed to ends success or
    partial without reporting it failed again (``attempts``: as an item's)."""

    id: int
    job: str
    start: datetime
    end: datetime
    first_run: int
    last_run: int
    attempts: int
    reason: str | None
    state: CarryState
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Carried:
    """What a job owes (``run.carried``: what is handed to the run), oldest first."""

    items: tuple[CarriedItem, ...] = ()
    slices: tuple[CarriedSlice, ...] = ()

    def __len__(self) -> int:
        return len(self.items) + len(self.slices)

    def __bool__(self) -> bool:
        return bool(self.items or self.slices)


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """The item outcomes of one group of a run (a product looked up on every
    marketplace): counts by item status and the sources that succeeded."""

    group: str
    counts: dict[str, int]
    found_in: tuple[str, ...]

    @property
    def found(self) -> bool:
        """Whether at least one item of the group succeeded."""
        return self.counts.get(ItemStatus.SUCCESS.value, 0) > 0


@dataclass(frozen=True, slots=True)
class PauseRecord:
    """ "Do not call this provider until ``until``"."""

    provider: str
    until: datetime
    reason: str
    paused_at: datetime
    paused_by: str | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated listing; ``next_cursor`` is ``None`` on
    the last page."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``Ledger.prune`` deleted (or would delete, on a dry run)."""

    runs: int = 0
    items: int = 0
    batches: int = 0
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class NumberedPage(Generic[T]):
    """One page of an offset-paginated listing (``page`` counts from 1).

    Page numbers reach a window of the first rows only (``PAGE_WINDOW`` of
    :mod:`runtrack.queries`); ``total`` is exact up to its end, and
    ``total_exact`` is False when more rows match (``total`` is then the
    window): the cursor goes further, at the same cost per page."""

    items: list[T]
    page: int
    limit: int
    total: int
    total_exact: bool = True

    @property
    def total_pages(self) -> int:
        return -(-self.total // self.limit)


@dataclass(frozen=True, slots=True)
class JobState:
    """A job as an operator sees it: its record, how many runs are active
    (pending or running), and the pause of its provider if one is in force."""

    job: JobRecord
    active_runs: int
    pause: PauseRecord | None
    #: Of the active runs, those running (the others are queued).
    running_runs: int = 0

    @property
    def queued_runs(self) -> int:
        return self.active_runs - self.running_runs


@dataclass(frozen=True, slots=True)
class ProviderState:
    """A provider known from its jobs or its pause."""

    name: str
    jobs: int
    pause: PauseRecord | None


@dataclass(frozen=True, slots=True)
class JobTally:
    """Totals over a job's runs that ended in one status, kept up to date by
    each finalization (so retention never lowers them).

    ``duration_buckets[i]`` counts runs whose duration fell in
    ``(bounds[i-1], bounds[i]]`` of the store's duration bounds (not
    cumulative); runs longer than the last bound are counted only in
    ``duration_count``."""

    job: str
    provider: str | None
    status: RunStatus
    runs: int
    items: dict[str, int]
    duration_count: int
    duration_sum: float
    duration_buckets: tuple[int, ...]
