"""Schedules fire at the right ticks (with a hand-moved clock), once per tick
however many runners share the database; paused providers, busy jobs and
failure streaks are skipped, and come back."""

from __future__ import annotations

from datetime import datetime, timedelta

from runtrack import Fatal, Ledger, ManualClock, Run, Runner, RunStatus

MIN = timedelta(minutes=1)


def ticks_of(ledger: Ledger, job: str) -> list[datetime]:
    runs = ledger.list_runs(job=job, limit=100).items
    return sorted(datetime.fromisoformat(r.notes[0]) for r in runs)


def recording(run: Run) -> None:
    assert run.scheduled_for is not None
    run.note(run.scheduled_for.isoformat())


def test_every_fires_on_its_grid(manual_ledger: Ledger, clock: ManualClock) -> None:
    t0 = clock.now()
    runner = Runner(manual_ledger)
    runner.job("board:search", provider="board", every="10m")(recording)

    assert runner.run_once().ran == 1  # a new job's first tick is now
    assert runner.run_once().ran == 0
    clock.advance(9 * MIN + timedelta(seconds=59))
    assert runner.run_once().ran == 0
    clock.advance(timedelta(seconds=1))
    assert runner.run_once().ran == 1
    clock.advance(35 * MIN)  # at t0+45m, three ticks are due (20, 30, 40)
    assert runner.run_once().ran == 1  # the oldest, 20...
    assert runner.run_once().ran == 1  # ...and the last one (catchup=1); 30 is skipped
    assert runner.run_once().ran == 0
    clock.advance(5 * MIN)
    assert runner.run_once().ran == 1

    assert ticks_of(manual_ledger, "board:search") == [
        t0,
        t0 + 10 * MIN,
        t0 + 20 * MIN,
        t0 + 40 * MIN,
        t0 + 50 * MIN,
    ]
    job = manual_ledger.get_job("board:search")
    assert job is not None and job.next_due_at == t0 + 60 * MIN
    record = manual_ledger.list_runs(job="board:search", limit=1).items[0]
    assert (record.triggered_by, record.attempt, record.status) == ("schedule", 1, "success")


def test_cron_fires_on_matching_minutes(manual_ledger: Ledger, clock: ManualClock) -> None:
    t0 = clock.now()  # 2026-01-01 00:00 UTC
    clock.advance(MIN)
    runner = Runner(manual_ledger)
    runner.job("gov:notices", provider="gov", cron="*/15 * * * *")(recording)

    assert runner.run_once().ran == 0  # first tick: 00:15, not at registration
    clock.set(t0 + 14 * MIN)
    assert runner.run_once().ran == 0
    clock.set(t0 + 15 * MIN)
    assert runner.run_once().ran == 1
    clock.set(t0 + 29 * MIN)
    assert runner.run_once().ran == 0
    clock.set(t0 + 31 * MIN)
    assert runner.run_once().ran == 1
    assert ticks_of(manual_ledger, "gov:notices") == [t0 + 15 * MIN, t0 + 30 * MIN]


def test_runners_sharing_a_database_run_each_tick_once(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runners = []
    for n in range(3):
        ledger = manual_ledger if n == 0 else Ledger(manual_ledger.url, clock=clock)
        runner = Runner(ledger, worker_id=f"worker-{n}")
        for j in range(4):
            runner.job(f"shop:{j}", provider="shop", every="5m")(recording)
        runners.append(runner)
    try:
        for _ in range(3):
            ran = sum(runner.run_once().ran for runner in runners)
            assert ran == 4
            clock.advance(5 * MIN)
    finally:
        for runner in runners[1:]:
            runner.ledger.close()
    for j in range(4):
        ticks = ticks_of(manual_ledger, f"shop:{j}")
        assert len(ticks) == len(set(ticks)) == 3


def test_paused_provider_is_skipped_until_the_pause_ends(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)
    runner.job("amazon:a", provider="amazon", every="5m", catchup=0)(recording)
    runner.job("amazon:b", provider="amazon", every="5m", catchup=0)(recording)
    runner.job("ebay:a", provider="ebay", every="5m", catchup=0)(recording)
    manual_ledger.pause("amazon", for_="12m", reason="quota exhausted")

    summary = runner.run_once()
    assert (summary.ran, summary.skipped_paused) == (1, 2)
    clock.advance(6 * MIN)
    assert (runner.run_once().ran, runner.run_once().skipped_paused) == (1, 2)
    clock.advance(6 * MIN)  # the pause ended: each waiting job runs once (and ebay's)
    summary = runner.run_once()
    assert (summary.ran, summary.skipped_paused) == (3, 0)
    assert len(ticks_of(manual_ledger, "amazon:a")) == 1
    assert runner.run_once().ran == 0


def test_a_busy_job_skips_its_tick(manual_ledger: Ledger, clock: ManualClock) -> None:
    runner = Runner(manual_ledger)
    runner.job("board:slow", provider="board", every="5m")(recording)
    holder = manual_ledger.start_run("board:slow", provider="board")

    summary = runner.run_once()
    assert (summary.ran, summary.skipped_busy) == (0, 1)
    assert runner.run_once().skipped_busy == 0  # the tick was consumed, not queued
    manual_ledger.finish_run(holder)
    clock.advance(5 * MIN)
    assert runner.run_once().ran == 1


def test_a_failure_streak_delays_the_schedule(manual_ledger: Ledger, clock: ManualClock) -> None:
    runner = Runner(manual_ledger)
    failing = {"on": True}

    @runner.job("board:flaky", provider="board", every="1m", failure_backoff="4m")
    def flaky(run: Run) -> None:
        if failing["on"]:
            raise Fatal("upstream schema changed")

    assert runner.run_once().failed == 1  # streak 1: wait 4 min after it
    clock.advance(MIN)
    assert runner.run_once().skipped_backoff == 1
    clock.advance(3 * MIN)
    assert runner.run_once().failed == 1  # streak 2: wait 8 min
    clock.advance(7 * MIN)
    assert runner.run_once().skipped_backoff == 1
    failing["on"] = False
    clock.advance(MIN)
    assert runner.run_once().succeeded == 1
    clock.advance(MIN)
    assert runner.run_once().succeeded == 1  # the streak is over: every minute again
    statuses = [r.status for r in manual_ledger.list_runs(job="board:flaky").items]
    assert statuses == [RunStatus.SUCCESS, RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.FAILED]


def test_a_tightened_schedule_is_followed_at_once(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    daily = Runner(manual_ledger)
    daily.job("gov:tenders", provider="gov", every="1d")(recording)
    assert daily.run_once().ran == 1
    clock.advance(10 * MIN)
    # Redeployed with an hourly schedule: it does not wait for tomorrow's tick.
    hourly = Runner(manual_ledger)
    hourly.job("gov:tenders", provider="gov", every="1h")(recording)
    assert hourly.run_once().ran == 1
    clock.advance(59 * MIN)
    assert hourly.run_once().ran == 0
    clock.advance(MIN)
    assert hourly.run_once().ran == 1
    # Loosened again: the stored hourly tick is kept, then the daily grid.
    relaxed = Runner(manual_ledger)
    relaxed.job("gov:tenders", provider="gov", every="1d")(recording)
    clock.advance(60 * MIN)
    assert relaxed.run_once().ran == 1
    clock.advance(60 * MIN)
    assert relaxed.run_once().ran == 0
    assert len(ticks_of(manual_ledger, "gov:tenders")) == 4
