"""Backfills (issue 17): records and the pure arithmetic of their windows.

A backfill covers ``[start, end)`` of a job's past with fixed windows of one
step each (the last one clipped at ``end``), so the windows tile the range
with no gap and no overlap. Each window is a queued run of the job
(:mod:`runtrack.backfiller` queues them, :mod:`runtrack.store.backfills`
stores them); the state of a window is the state of its latest run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from runtrack.models import RunStatus

__all__ = [
    "MAX_WINDOWS",
    "BackfillProgress",
    "BackfillRecord",
    "BackfillState",
    "BackfillWindow",
    "WindowState",
    "count_windows",
    "tile",
]

#: The most windows one backfill may queue (refused above, before any write).
MAX_WINDOWS = 10_000


class WindowState(StrEnum):
    """Where one window of a backfill stands, from its latest run."""

    DONE = "done"  # success or partial
    FAILED = "failed"  # failed, cancelled or expired: resume queues it again
    QUEUED = "queued"  # pending
    RUNNING = "running"
    MISSING = "missing"  # no run (its runs were pruned): resume queues it again

    @classmethod
    def of(cls, status: RunStatus | None) -> WindowState:
        if status is None:
            return cls.MISSING
        if status is RunStatus.PENDING:
            return cls.QUEUED
        if status is RunStatus.RUNNING:
            return cls.RUNNING
        if status in (RunStatus.SUCCESS, RunStatus.PARTIAL):
            return cls.DONE
        return cls.FAILED


class BackfillState(StrEnum):
    """A backfill as a whole: ``running`` while any window is queued or
    running; then ``done`` if every window is, else ``failed``;
    ``cancelled`` once cancelled (until resumed)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """How many windows stand where."""

    done: int = 0
    failed: int = 0
    queued: int = 0
    running: int = 0
    missing: int = 0

    @classmethod
    def of(cls, states: Iterable[WindowState]) -> BackfillProgress:
        counts = dict.fromkeys(WindowState, 0)
        for state in states:
            counts[state] += 1
        return cls(*(counts[s] for s in WindowState))


@dataclass(frozen=True, slots=True)
class BackfillRecord:
    """One backfill as stored, with its progress. Times are aware UTC."""

    id: int
    job: str
    start: datetime
    end: datetime
    every: timedelta
    windows: int
    max_parallel: int | None
    triggered_by: str
    created_at: datetime
    cancelled: bool
    progress: BackfillProgress

    @property
    def state(self) -> BackfillState:
        p = self.progress
        if self.cancelled:
            return BackfillState.CANCELLED
        if p.queued or p.running:
            return BackfillState.RUNNING
        return BackfillState.FAILED if p.failed or p.missing else BackfillState.DONE


@dataclass(frozen=True, slots=True)
class BackfillWindow:
    """One window of a backfill and its latest run (``None``: no run)."""

    start: datetime
    end: datetime
    run_id: int | None
    status: RunStatus | None
    runs: int  # how many runs this window had (1 + the times it was resumed)

    @property
    def state(self) -> WindowState:
        return WindowState.of(self.status)


def count_windows(start: datetime, end: datetime, every: timedelta) -> int:
    """How many windows tile ``[start, end)`` in steps of ``every``."""
    return -((start - end) // every)  # ceiling division of timedeltas


def tile(start: datetime, end: datetime, every: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """The windows ``[s, e)`` of ``[start, end)``: each ``every`` long, the
    last clipped at ``end``; each starts where the one before ended."""
    at = start
    while at < end:
        following = min(at + every, end)
        yield at, following
        at = following
