"""When a job is due: ``every`` intervals and ``cron`` expressions (pure).

A schedule only does date arithmetic; the runner stores each job's next due
time in the database (``jobs.next_due_at``) and claims a tick by moving it
forward with a conditional update, so that many runner processes fire each
tick once.

A tick that is run late stays a tick of its own: up to ``catchup`` ticks that
fell due meanwhile are still run, one after another, and older ones are
coalesced, so an overloaded runner loses nothing while a runner that was down
for a day does not replay the day. Cron expressions are read in UTC, the
ledger's time zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from croniter import croniter

from runtrack import inputs
from runtrack.errors import InvalidInput, SchedulingError, describe

__all__ = ["Cron", "Every", "Schedule", "parse_schedule"]


class Schedule(Protocol):
    """Tick arithmetic of one job."""

    def first_due(self, now: datetime) -> datetime:
        """The first tick of a job the database has no due time for yet."""
        ...

    def next_after(self, due: datetime, now: datetime, catchup: int = 0) -> datetime:
        """The tick to run after ``due`` (being run at ``now``): the first tick
        after ``now``, or the oldest of the last ``catchup`` ticks before it
        that are later than ``due``."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Every:
    """A fixed interval. The first tick is immediate; later ticks stay on the
    grid of the first one, so a run's duration never makes the schedule drift."""

    interval: timedelta

    def first_due(self, now: datetime) -> datetime:
        return now

    def next_after(self, due: datetime, now: datetime, catchup: int = 0) -> datetime:
        steps = max(math.floor((now - due) / self.interval) + 1, 1)
        return due + max(steps - catchup, 1) * self.interval

    def describe(self) -> str:
        return f"every {self.interval}"


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression (5 fields, or 6 with seconds; ``@hourly`` and friends),
    in UTC. The first tick is the first match after the job is first seen."""

    expression: str

    def first_due(self, now: datetime) -> datetime:
        return self._after(now)

    def next_after(self, due: datetime, now: datetime, catchup: int = 0) -> datetime:
        following = self._after(due)
        if following > now:
            return following
        ticks = croniter(self.expression, self._after(now))
        earliest: datetime = ticks.get_current(datetime)
        for _ in range(catchup):
            earliest = ticks.get_prev(datetime)
        return max(following, earliest)

    def _after(self, moment: datetime) -> datetime:
        result: datetime = croniter(self.expression, moment).get_next(datetime)
        return result

    def describe(self) -> str:
        return f"cron {self.expression!r}"


def parse_schedule(
    job: str, every: timedelta | float | str | None, cron: str | None
) -> Every | Cron:
    """Validate ``every``/``cron`` of a job registration; exactly one is required."""
    if (every is None) == (cron is None):
        raise SchedulingError(
            job,
            "every/cron",
            "both were given" if every is not None else "neither was given",
            "exactly one: every='15m' (or a timedelta) or cron='*/15 * * * *'",
        )
    if cron is not None:
        return Cron(_cron(job, cron))
    return Every(_interval(job, every))


def _interval(job: str, every: object) -> timedelta:
    try:
        return inputs.duration("every", every)
    except InvalidInput:
        raise SchedulingError(
            job,
            "every",
            f"{describe(every)} is not a positive duration",
            "a positive timedelta, seconds, or text like '30s', '15m', '1h', '1d'",
        ) from None


def _cron(job: str, expression: object) -> str:
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise SchedulingError(
            job,
            "cron",
            f"{describe(expression)} is not a valid cron expression",
            "5 fields 'minute hour day month weekday' such as '*/15 * * * *', "
            "6 with seconds last, or @hourly/@daily/@weekly/@monthly/@yearly",
        )
    return expression
