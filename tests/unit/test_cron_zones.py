"""Cron in a time zone (pure date arithmetic): a daily Madrid job is due once
on each of the 365 days of 2026; the spring-forward gap runs at the first
instant after it, the fall-back repeat runs once; unknown zones are refused."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from runtrack.errors import SchedulingError
from runtrack.runner.schedule import Cron, parse_schedule

MADRID = ZoneInfo("Europe/Madrid")


def madrid(*fields: int, fold: int = 0) -> datetime:
    return datetime(*fields, tzinfo=MADRID, fold=fold).astimezone(UTC)  # type: ignore[misc]


def ticks(schedule: Cron, start: datetime, end: datetime) -> list[datetime]:
    """Every tick in [start, end), each run on time (``now`` is the tick)."""
    found, due = [], schedule.first_due(start)
    while due < end:
        found.append(due)
        due = schedule.next_after(due, due, catchup=1)
    return found


def test_a_daily_0230_madrid_job_is_due_365_times_in_2026() -> None:
    schedule = parse_schedule("shop:daily", None, "30 2 * * *", "Europe/Madrid")
    assert isinstance(schedule, Cron)
    found = ticks(schedule, madrid(2026, 1, 1), madrid(2027, 1, 1))

    assert len(found) == 365
    days = [t.astimezone(MADRID).date() for t in found]
    assert len(set(days)) == 365 and days == sorted(days)
    off_time = {t.astimezone(MADRID).date(): t for t in found if t.astimezone(MADRID).hour != 2}
    # 29 March: 02:00 -> 03:00, so 02:30 does not exist: it runs at 03:00 local,
    # the instant the clocks jump (01:00 UTC), and nowhere else that day.
    assert off_time == {date(2026, 3, 29): datetime(2026, 3, 29, 1, tzinfo=UTC)}
    assert found[days.index(date(2026, 3, 29))].astimezone(MADRID).hour == 3
    # 25 October: 03:00 -> 02:00, so 02:30 happens twice: it runs once, the first time.
    october = [t for t in found if t.astimezone(MADRID).date() == date(2026, 10, 25)]
    assert october == [madrid(2026, 10, 25, 2, 30, fold=0)]
    assert october[0] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # Winter 02:30 is 01:30 UTC, summer 02:30 is 00:30 UTC.
    assert found[0] == datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
    assert madrid(2026, 7, 1, 2, 30) in found


def test_every_match_in_the_gap_runs_once_at_the_jump_and_the_repeat_once() -> None:
    schedule = Cron("*/20 * * * *", "Europe/Madrid")
    spring = ticks(schedule, madrid(2026, 3, 29, 1, 30), madrid(2026, 3, 29, 3, 30))
    assert [t.astimezone(MADRID).strftime("%H:%M") for t in spring] == [
        "01:40", "03:00", "03:20",
    ]  # fmt: skip
    autumn = ticks(schedule, madrid(2026, 10, 25, 1, 30), madrid(2026, 10, 25, 3, 10))
    local = [t.astimezone(MADRID).strftime("%H:%M") for t in autumn]
    assert local == ["01:40", "02:00", "02:20", "02:40", "03:00"]
    gaps = [(b - a) // timedelta(minutes=1) for a, b in itertools.pairwise(autumn)]
    assert gaps == [20, 20, 20, 80]  # 02:00-02:59 CET (the repeat) runs nothing


def test_catchup_in_a_zone_counts_ticks_back_from_now() -> None:
    schedule = Cron("30 2 * * *", "Europe/Madrid")
    due = madrid(2026, 3, 27, 2, 30)
    # Three days late with catchup=2: the ticks of the 29th (the gap) and 30th
    # still run, the 28th's is coalesced.
    late = schedule.next_after(due, madrid(2026, 3, 30, 12, 0), catchup=2)
    assert late == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert schedule.next_after(late, madrid(2026, 3, 30, 12, 0), 2) == madrid(2026, 3, 30, 2, 30)


def test_utc_is_the_default_and_reads_as_before() -> None:
    plain = parse_schedule("a", None, "30 2 * * *")
    assert plain == Cron("30 2 * * *") == parse_schedule("a", None, "30 2 * * *", "UTC")
    assert plain.describe() == "cron '30 2 * * *'"
    assert Cron("30 2 * * *", "Europe/Madrid").describe() == "cron '30 2 * * *' Europe/Madrid"
    first = plain.first_due(datetime(2026, 3, 29, tzinfo=UTC))
    assert first == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "problem"),
    [
        ("Europe/Madird", "'Europe/Madird' is not a known time zone"),
        ("../../etc/passwd", "is not a known time zone"),
        ("", "got ''"),
        (1, "got 1"),
    ],
)
def test_an_unknown_zone_is_refused_at_registration(tz: object, problem: str) -> None:
    with pytest.raises(SchedulingError) as refused:
        parse_schedule("shop:daily", None, "30 2 * * *", tz)
    assert refused.value.field == "tz" and problem in str(refused.value)
    assert "IANA time zone name" in str(refused.value)


def test_a_zone_goes_with_cron_only() -> None:
    with pytest.raises(SchedulingError, match="tz only with cron"):
        parse_schedule("shop:daily", "1h", None, "Europe/Madrid")
