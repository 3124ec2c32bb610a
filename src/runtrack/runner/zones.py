"""Cron ticks on a local wall clock (pure): IANA zones through :mod:`zoneinfo`.

croniter counts wall-clock times; this module turns each local match into the
one instant it runs at, by two rules around daylight-saving changes:

- a local time that does not exist (the spring-forward gap, 02:30 on the last
  Sunday of March in Madrid) runs at the first instant after the gap (03:00
  local, the instant the clocks jump);
- a local time that happens twice (the fall-back hour) runs once, at its first
  occurrence.

Both keep "a daily job runs once a day": 365 runs in a year, whatever the zone.
Instants are aware UTC datetimes; local wall times are naive.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

__all__ = ["UTC_NAME", "instant_of", "load_zone", "tick_after", "tick_before"]

UTC_NAME = "UTC"
# A cron that matches every second finds its next tick after at most the
# length of a fall-back repeat (at most 2 h = 7,200 matches, in any zone).
MAX_MATCHES = 10_000


def load_zone(name: str) -> ZoneInfo:
    """The zone named ``name``; ``LookupError`` (with the reason) if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as unknown:
        raise LookupError(str(unknown) or name) from None


def instant_of(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant a cron match at wall time ``local`` runs at."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first  # exists (fold=0 is the first of a repeated time)
    # In a gap, fold=0 reads the time with the offset before the change and
    # fold=1 with the one after: the change happened between the two.
    other = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _change_between(min(first, other), max(first, other), zone)


def tick_after(expression: str, zone: ZoneInfo, moment: datetime) -> datetime:
    """The first instant a tick of ``expression`` runs at that is later than ``moment``."""
    # A wall time at or before the moment's own never runs after it (instant_of
    # never decreases as wall time grows); wall times after it during a repeated
    # hour may run before it, and are skipped.
    matches = croniter(expression, _wall(moment, zone))
    for _ in range(MAX_MATCHES):
        instant = instant_of(matches.get_next(datetime), zone)
        if instant > moment:
            return instant
    raise LookupError(f"no tick of {expression!r} after {moment.isoformat()}")


def tick_before(expression: str, zone: ZoneInfo, moment: datetime) -> datetime:
    """The last instant a tick of ``expression`` runs at that is earlier than ``moment``."""
    local = moment.astimezone(zone)
    start = local.replace(tzinfo=None)
    if local.fold:  # in the repeat: the first pass's later wall times ran before the moment
        start += _repeat_length(start, zone)
    matches = croniter(expression, start)
    for _ in range(MAX_MATCHES):
        instant = instant_of(matches.get_prev(datetime), zone)
        if instant < moment:
            return instant
    raise LookupError(f"no tick of {expression!r} before {moment.isoformat()}")


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _repeat_length(local: datetime, zone: ZoneInfo) -> timedelta:
    before = local.replace(tzinfo=zone, fold=0).utcoffset()
    after = local.replace(tzinfo=zone, fold=1).utcoffset()
    assert before is not None and after is not None
    return max(before - after, timedelta(0))


def _change_between(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The instant in ``(low, high]`` at which ``zone``'s offset changes to
    the one it has at ``high`` (zones change on whole seconds)."""
    target = high.astimezone(zone).utcoffset()
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)
