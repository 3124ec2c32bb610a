"""Cron in a time zone, through a real runner on every database with a
hand-moved clock (no sleeping): a daily 02:30 Europe/Madrid job runs exactly
365 times over 2026, at the jump on the spring-forward day and once on the
fall-back day; the job row stores the schedule with its zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from runtrack import Ledger, ManualClock, Run, Runner
from runtrack.errors import SchedulingError

MADRID = ZoneInfo("Europe/Madrid")


def test_a_daily_madrid_job_runs_365_times_in_2026(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 1, 1, tzinfo=MADRID))
    ran: list[datetime] = []
    runner = Runner(manual_ledger, reap_every=None, prune_every=None, check_every=None)

    @runner.job("shop:daily", provider="shop", cron="30 2 * * *", tz="Europe/Madrid")
    def daily(run: Run) -> None:
        assert run.scheduled_for is not None
        ran.append(run.scheduled_for)

    assert runner.run_once().ran == 0  # registers the job; its first tick is 02:30
    job = manual_ledger.get_job("shop:daily")
    assert job is not None and job.next_due_at is not None
    assert (job.schedule, job.schedule_tz) == ("cron '30 2 * * *' Europe/Madrid", "Europe/Madrid")
    end = datetime(2027, 1, 1, tzinfo=MADRID)
    while job.next_due_at < end:
        clock.set(job.next_due_at)
        assert runner.run_once().ran == 1
        assert runner.run_once().ran == 0  # each tick once
        job = manual_ledger.get_job("shop:daily")
        assert job is not None and job.next_due_at is not None

    assert len(ran) == 365
    local = [t.astimezone(MADRID) for t in ran]
    assert len({t.date() for t in local}) == 365
    assert [t for t in local if (t.hour, t.minute) != (2, 30)] == [
        datetime(2026, 3, 29, 1, tzinfo=UTC).astimezone(MADRID)  # 03:00 CEST, the jump
    ]
    assert [t for t in ran if t.astimezone(MADRID).date() == date(2026, 10, 25)] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, the first of the two
    ]
    assert manual_ledger.count_runs(job="shop:daily") == 365


def test_an_unknown_zone_is_refused_before_anything_is_written(manual_ledger: Ledger) -> None:
    runner = Runner(manual_ledger)
    with pytest.raises(SchedulingError, match="'Europe/Madird' is not a known time zone"):
        runner.job("shop:daily", provider="shop", cron="30 2 * * *", tz="Europe/Madird")(print)
    assert runner.jobs == [] and manual_ledger.get_job("shop:daily") is None
