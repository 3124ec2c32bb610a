"""The values that cross the ledger/store boundary: filters and effects the
ledger passes down, records and refusals the store hands back. No SQL here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, NotRequired, TypedDict

from runtrack.models import OnPartial, RunStatus
from runtrack.store.carry import CarryRequest
from runtrack.store.guards import Guard

__all__ = [
    "Change",
    "ClaimedRun",
    "JobEffect",
    "LeaseTaken",
    "NewItem",
    "NewRun",
    "RunEnd",
    "RunFilter",
    "RunState",
    "StartedRun",
    "WindowBeforeWatermark",
]


class NewItem(TypedDict):
    """One item a run recorded, checked, as the store writes it. A dict,
    built once per item, because that is what the driver binds: a tuple
    turned into one in the store costs 0.75 us more per item, a fifth of an
    item's whole cost on SQLite. The write that takes it sets ``recorded_at``
    (naive UTC)."""

    run_id: int
    key: str
    #: An :class:`~runtrack.models.ItemStatus` value.
    status: str
    group_key: str | None
    source: str | None
    data: Any
    error: str | None
    recorded_at: NotRequired[datetime]


#: A run's status, cancel request time and cancel reason, as a tick reads them.
RunState = tuple[str, datetime | None, str | None]


@dataclass(frozen=True, slots=True)
class RunFilter:
    """The filters every run listing understands."""

    job: str | None = None
    provider: str | None = None
    statuses: tuple[RunStatus, ...] = ()
    triggered_by: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Case-insensitive substrings of the job key and of the error message.
    job_contains: str | None = None
    error_contains: str | None = None
    #: (name, value) pairs a run must all have.
    labels: tuple[tuple[str, str], ...] = ()


class ClaimedRun(NamedTuple):
    """What a claim reads back of the run it moved to running: what the
    run's handle is made of (times aware, in UTC), not the whole record."""

    id: int
    uid: str
    job: str
    provider: str | None
    attempt: int
    params: Any
    window_start: datetime | None
    window_end: datetime | None
    checkpoint: Any
    moves_watermark: bool
    on_partial: OnPartial
    max_carry_attempts: int
    #: The time the claim's (last) attempt read: the run's ``started_at``.
    started_at: datetime


@dataclass(frozen=True, slots=True)
class StartedRun:
    """What the store tells the ledger about a run it just inserted."""

    id: int
    window_start: datetime | None
    job_checkpoint: Any
    resume_checkpoint: Any
    window_end: datetime | None = None
    #: Whether the job has carried entries (owed or given up) to settle.
    owes: bool = False
    #: The job's volume history, for the guard (read only when asked for).
    volume_history: Any = None
    #: When it took its slot (naive UTC): the start's clock reading, or the
    #: reading of the attempt that succeeded if the store had to retry.
    started_at: datetime | None = None


class WindowBeforeWatermark(Exception):
    """Internal: a run's explicit window_end is before the job's watermark."""

    def __init__(self, watermark: datetime) -> None:
        self.watermark = watermark
        super().__init__(watermark)


class LeaseTaken(Exception):
    """Internal: every lease slot of the job is held (holders listed)."""

    def __init__(self, holders: list[tuple[int, str]]) -> None:
        self.holders = holders  # (run id, status)
        super().__init__(holders)


@dataclass(frozen=True, slots=True)
class JobEffect:
    """What a terminal run changes on its job (naive UTC ``window_end``)."""

    job_key: str
    window_end: datetime | None
    moves_watermark: bool
    checkpoint: Any
    started_at: datetime | None = None  # naive UTC; for the duration tally
    #: ``on_partial="hold"``: a partial end leaves the watermark where it was.
    hold: bool = False
    #: What the run's end settles of what its job owes (None: nothing).
    carry: CarryRequest | None = None
    #: A guarded run's new volume history and anomaly (see runtrack.volume),
    #: written by the same job update; ``None``: the run was not guarded.
    volume: tuple[Any, Any] | None = None


@dataclass(slots=True)
class RunEnd:
    """What a run's end records besides its status, as the ledger knows it.

    Whoever ends a run builds one (its owner from the handle, a finish or a
    cancel by id, the reaper, a cancelled backfill); the store writes it and
    owns the columns and the time conversion. A field left ``None`` is not
    written: the run's row keeps what it has (a finish by id keeps the
    counters its heartbeats wrote)."""

    finished_at: datetime
    error_type: str | None = None
    error_message: str | None = None
    error_stack: str | None = None
    error_details: dict[str, Any] | None = None
    counters: dict[str, Any] | None = None
    notes: list[str] | None = None
    progress_total: int | None = None
    progress_done: int | None = None
    #: The owner's item tallies by status (success, not_found, skipped,
    #: error); ``None``: the store counts the run's stored items.
    items: dict[str, int] | None = None
    groups_found: int | None = None
    groups_missing: int | None = None
    #: A failed attempt whose retry is scheduled: not a failure for good.
    retried: bool = False
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    cancel_reason: str | None = None

    def add_details(self, **details: Any) -> None:
        """Merge ``details`` into ``error_details`` (the later key wins)."""
        self.error_details = {**(self.error_details or {}), **details}

    def failed_with(
        self, error_type: str | None, message: str | None = None, stack: str | None = None
    ) -> None:
        """Record what ended the run; ``None`` parts leave what is there."""
        if error_type is not None:
            self.error_type = error_type
        if message is not None:
            self.error_message = message
        if stack is not None:
            self.error_stack = stack


#: A guarded move of one run: its id, target, the statuses it may leave, its
#: end, and the guards (as data) its row must also match.
Change = tuple[int, RunStatus, frozenset[RunStatus], RunEnd, tuple[Guard, ...]]


class NewRun(NamedTuple):
    """A run to insert, as the ledger decided it (aware UTC times); the store
    owns its columns (:func:`runtrack.store.rows.run_row`). A tuple: one is
    built for every run."""

    uid: str
    job: str
    provider: str | None
    status: RunStatus
    created_at: datetime
    triggered_by: str
    attempt: int
    #: Whether its end moves the job's watermark (see ``Ledger.run``).
    moves_watermark: bool
    params: dict[str, Any] | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    retry_of: int | None = None
    retry_policy: dict[str, Any] | None = None
    #: Its carry options; ``None``: the default, not written.
    on_partial: str | None = None
    max_carry_attempts: int | None = None
    #: A queued run's link to the run it repeats, its backfill, its place.
    rerun_of: int | None = None
    backfill_id: int | None = None
    priority: int | None = None
    #: Who runs it, for a run inserted running.
    host: str | None = None
    pid: int | None = None
    worker_id: str | None = None
    labels: Mapping[str, str] | None = None
