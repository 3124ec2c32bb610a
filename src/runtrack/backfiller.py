"""Backfills, the ledger's part (issue 17): ``backfill``, ``resume_backfill``,
``cancel_backfill`` and their reads.

A backfill queues one ``pending`` run per window of ``[start, end)`` (see
:mod:`runtrack.backfills`), at the queue's lowest priority, so manual
triggers and schedule ticks go first. Its runs never move the job's
watermark: they cover the past, and the live window goes on from where it
is. Every check runs before anything is written.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from runtrack import inputs
from runtrack.backfills import (
    MAX_WINDOWS,
    BackfillRecord,
    BackfillWindow,
    WindowState,
    count_windows,
    tile,
)
from runtrack.clock import Clock
from runtrack.errors import BackfillNotFound, InvalidInput, JobNotFound
from runtrack.models import RunStatus
from runtrack.queue import PRIORITY_BACKFILL
from runtrack.store.backfills import BackfillRow, BackfillStore, LatestRun
from runtrack.store.jobs import JobStore
from runtrack.store.liveness import LivenessStore
from runtrack.store.values import Change, NewRun, RunEnd

__all__ = ["Backfiller"]

#: Backfills listed at most at once.
MAX_LIST = 500
#: Statuses of a window's latest run that ``resume_backfill`` queues again.
RESUMABLE = frozenset({WindowState.FAILED, WindowState.MISSING})


class Backfiller:
    """The part of the :class:`~runtrack.ledger.Ledger` behind backfills."""

    def __init__(
        self, jobs: JobStore, liveness: LivenessStore, backfills: BackfillStore, clock: Clock
    ) -> None:
        self._jobs = jobs
        self._liveness = liveness
        self._backfills = backfills
        self._clock = clock

    def backfill(
        self,
        job: str,
        start: datetime,
        end: datetime,
        *,
        every: timedelta | float | str = "1d",
        by: str = "user",
        max_parallel: int | None = None,
    ) -> BackfillRecord:
        """Record a backfill of ``job`` over ``[start, end)`` and queue one run
        per window of ``every`` (the last clipped at ``end``) for the workers
        serving the job, behind manual triggers and ticks; at most
        ``max_parallel`` of them run at once (``None``: the job's
        ``concurrency`` decides). Its runs never move the watermark. Refused
        before any write: an unknown job, ``end <= start``, a step that is not
        whole seconds, more than 10,000 windows."""
        inputs.key("job", job)
        inputs.key("by", by)
        first = _time("start", start)
        last = _time("end", end)
        if last <= first:
            raise InvalidInput("end", f"{last.isoformat()} is not after start", "start < end")
        step = _step(every)
        windows = count_windows(first, last, step)
        if windows > MAX_WINDOWS:
            raise InvalidInput(
                "every",
                f"{windows} windows of {step} in [{first.isoformat()}, {last.isoformat()})",
                f"at most {MAX_WINDOWS:,} windows: a longer step or a shorter range",
            )
        if max_parallel is not None:
            max_parallel = inputs.positive_int("max_parallel", max_parallel, limit=10_000)
        record = self._jobs.get_job(job)
        if record is None:
            raise JobNotFound(job)
        at = self._clock.now()
        children = [
            self._child(job, record.provider, by, s, e, at) for s, e in tile(first, last, step)
        ]
        window = (first, last, step)
        backfill_id = self._backfills.create(job, window, windows, max_parallel, by, at, children)
        if backfill_id is None:
            raise JobNotFound(job)
        return self.get_backfill(backfill_id)

    def resume_backfill(self, backfill_id: int, *, by: str | None = None) -> BackfillRecord:
        """Queue again the windows whose latest run failed, was cancelled or
        expired, and those with no run left; queued, running and done
        windows are left alone. A cancelled backfill becomes active again."""
        found = self._found(backfill_id)
        if by is not None:
            inputs.key("by", by)

        def children(current: BackfillRow) -> list[NewRun]:
            now = self._clock.now()
            provider = self._provider(current.record.job)
            who = by or current.record.triggered_by
            return [
                self._child(current.record.job, provider, who, s, e, now)
                for s, e in _resumable(current)
            ]

        self._backfills.requeue(found.record.id, children)
        return self.get_backfill(found.record.id)

    def cancel_backfill(self, backfill_id: int, *, by: str | None = None) -> BackfillRecord:
        """Cancel the backfill's queued runs (running ones finish) and mark
        it cancelled; :meth:`resume_backfill` queues them again."""
        found = self._found(backfill_id)
        inputs.key("by", by, optional=True)
        pending = self._backfills.mark_cancelled(found.record.id)
        end = RunEnd(
            self._clock.now(),
            cancel_requested_by=by,
            error_type="cancelled",
            error_message=f"backfill {found.record.id} cancelled",
        )
        allowed = frozenset({RunStatus.PENDING})
        changes: list[Change] = [(i, RunStatus.CANCELLED, allowed, end, ()) for i in pending]
        for chunk in range(0, len(changes), 500):
            self._liveness.transition_many(changes[chunk : chunk + 500])
        return self.get_backfill(found.record.id)

    def get_backfill(self, backfill_id: int) -> BackfillRecord:
        """The backfill with this id and its progress, or :class:`BackfillNotFound`."""
        return self._found(backfill_id).record

    def backfills(self, *, job: str | None = None, limit: int = 50) -> list[BackfillRecord]:
        """Backfills, newest first (of ``job`` if given)."""
        if job is not None:
            inputs.key("job", job)
        limit = inputs.positive_int("limit", limit, limit=MAX_LIST)
        return [row.record for row in self._backfills.recent(job, limit)]

    def backfill_windows(self, backfill_id: int) -> list[BackfillWindow]:
        """Every window of the backfill in order, with its latest run."""
        found = self._found(backfill_id)
        latest = {r.window_start: r for r in found.latest}
        windows = tile(found.record.start, found.record.end, found.record.every)
        return [_window(s, e, latest.get(s)) for s, e in windows]

    # -- helpers ---------------------------------------------------------------------

    def _found(self, backfill_id: int) -> BackfillRow:
        found = self._backfills.get(inputs.positive_int("backfill_id", backfill_id))
        if found is None:
            raise BackfillNotFound(backfill_id)
        return found

    def _provider(self, job: str) -> str | None:
        record = self._jobs.get_job(job)
        return record.provider if record is not None else None

    @staticmethod
    def _child(
        job: str, provider: str | None, by: str, start: datetime, end: datetime, now: datetime
    ) -> NewRun:
        """One window's queued run."""
        return NewRun(
            str(uuid.uuid4()),
            job,
            provider,
            RunStatus.PENDING,
            now,
            by,
            1,
            False,  # the past never moves the live watermark
            window_start=start,
            window_end=end,
            priority=PRIORITY_BACKFILL,
        )


def _time(field: str, value: object) -> datetime:
    result = inputs.timestamp(field, value, optional=False)
    assert result is not None
    return result


def _step(every: object) -> timedelta:
    step = inputs.duration("every", every, limit=inputs.MAX_DURATION)
    if step.total_seconds() != int(step.total_seconds()):
        raise InvalidInput("every", f"{step} is not whole seconds", "1s, 15m, 1h, 1d, 1w")
    return step


def _resumable(current: BackfillRow) -> list[tuple[datetime, datetime]]:
    latest = {r.window_start: r for r in current.latest}
    return [
        (s, e)
        for s, e in tile(current.record.start, current.record.end, current.record.every)
        if WindowState.of(latest[s].status if s in latest else None) in RESUMABLE
    ]


def _window(start: datetime, end: datetime, latest: LatestRun | None) -> BackfillWindow:
    return BackfillWindow(
        start,
        end,
        latest.run_id if latest else None,
        latest.status if latest else None,
        latest.runs if latest else 0,
    )
