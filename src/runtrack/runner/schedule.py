"""When a job is due: ``every`` intervals and ``cron`` expressions (pure).

A schedule only does date arithmetic; the runner stores each job's next due
time in the database (``jobs.next_due_at``) and claims a tick by moving it
forward with a conditional update, so that many runner processes fire each
tick once.

A tick that is run late stays a tick of its own: up to ``catchup`` ticks that
fell due meanwhile are still run, one after another, and older ones are
coalesced, so an overloaded runner loses nothing while a runner that was down
for a day does not replay the day. Cron expressions are read in UTC, the
ledger's time zone, unless the job names an IANA zone (``tz="Europe/Madrid"``):
then they are read on that zone's wall clock (see :mod:`runtrack.runner.zones`
for the daylight-saving rules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from runtrack import inputs
from runtrack.errors import InvalidInput, SchedulingError, describe
from runtrack.readable import interval
from runtrack.runner.zones import UTC_NAME, load_zone, tick_after, tick_before

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
        return f"every {interval(self.interval)}"


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression (5 fields, or 6 with seconds; ``@hourly`` and friends),
    in UTC or on the wall clock of the IANA zone ``tz``. The first tick is the
    first match after the job is first seen."""

    expression: str
    tz: str = UTC_NAME
    zone: ZoneInfo | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.zone is None and self.tz != UTC_NAME:
            object.__setattr__(self, "zone", load_zone(self.tz))

    def first_due(self, now: datetime) -> datetime:
        return self._after(now)

    def next_after(self, due: datetime, now: datetime, catchup: int = 0) -> datetime:
        following = self._after(due)
        if following > now:
            return following
        earliest = self._after(now)
        for _ in range(catchup):
            earliest = self._before(earliest)
        return max(following, earliest)

    def _after(self, moment: datetime) -> datetime:
        if self.zone is not None:
            return tick_after(self.expression, self.zone, moment)
        result: datetime = croniter(self.expression, moment).get_next(datetime)
        return result

    def _before(self, moment: datetime) -> datetime:
        if self.zone is not None:
            return tick_before(self.expression, self.zone, moment)
        result: datetime = croniter(self.expression, moment).get_prev(datetime)
        return result

    def describe(self) -> str:
        text = f"cron {self.expression!r}"
        return text if self.zone is None else f"{text} {self.tz}"


def parse_schedule(
    job: str, every: timedelta | float | str | None, cron: str | None, tz: object = None
) -> Every | Cron:
    """Validate ``every``/``cron``/``tz`` of a job registration; exactly one of
    ``every`` and ``cron`` is required, and ``tz`` goes with ``cron`` only."""
    if (every is None) == (cron is None):
        raise SchedulingError(
            job,
            "every/cron",
            "both were given" if every is not None else "neither was given",
            "exactly one: every='15m' (or a timedelta) or cron='*/15 * * * *'",
        )
    if cron is not None:
        return _zoned(job, _cron(job, cron), tz)
    if tz is not None:
        raise SchedulingError(
            job, "tz", f"{describe(tz)} was given with every=", "tz only with cron=..."
        )
    return Every(_interval(job, every))


def _zoned(job: str, expression: str, tz: object) -> Cron:
    if tz is None or tz == UTC_NAME:
        return Cron(expression)
    allowed = "an IANA time zone name such as 'Europe/Madrid', 'America/New_York' or 'UTC'"
    if not isinstance(tz, str) or not tz or len(tz) > 64:
        raise SchedulingError(job, "tz", f"got {describe(tz)}", allowed)
    try:
        return Cron(expression, tz, load_zone(tz))
    except LookupError:
        raise SchedulingError(job, "tz", f"{tz!r} is not a known time zone", allowed) from None


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
