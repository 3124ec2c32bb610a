"""The values that cross the ledger/store boundary: filters and effects the
ledger passes down, records and refusals the store hands back. No SQL here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runtrack.models import RunStatus
from runtrack.store.carry import CarryRequest

__all__ = [
    "JobEffect",
    "LeaseTaken",
    "RunFilter",
    "RunState",
    "StartedRun",
    "WindowBeforeWatermark",
]

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
