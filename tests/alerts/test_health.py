"""Health that means something (issue 18): the streak counts ticks whose
final attempt failed; retried and rate-limited attempts are marked, shown
apart and not counted; timeouts end failed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtrack import (
    Ledger,
    ManualClock,
    RateLimited,
    RetryPolicy,
    Run,
    Runner,
    RunStatus,
    Transient,
)
from runtrack.health import HealthState, failure_text

S = timedelta(seconds=1)
POLICY = RetryPolicy(max_attempts=3, initial=10, multiplier=1, max_delay=60, jitter=0)


def health(ledger: Ledger, job: str) -> HealthState:
    return ledger.job_health(job).state


def test_a_tick_that_succeeds_after_a_retry_is_no_failure(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)

    @runner.job("board:flaky", provider="board", every="1h", retry=POLICY)
    def flaky(run: Run) -> None:
        if run.attempt == 1:
            raise Transient("502")

    for _ in range(3):  # three ticks, each: a failed attempt, then a success
        assert runner.run_once().retries == 1
        assert health(manual_ledger, "board:flaky") is HealthState.RETRYING
        clock.advance(10 * S)
        assert runner.run_once().succeeded == 1
        clock.advance(timedelta(hours=1))

    job = manual_ledger.get_job("board:flaky")
    assert job is not None and job.consecutive_failures == 0
    strip = manual_ledger.recent_outcomes(["board:flaky"])["board:flaky"]
    assert [(o.status.value, o.note) for o in strip] == [
        ("success", None), ("failed", "retried")
    ] * 3  # fmt: skip
    assert health(manual_ledger, "board:flaky") is HealthState.HEALTHY
    runs = manual_ledger.list_runs(job="board:flaky", status=RunStatus.FAILED).items
    assert all(r.error_type == "runtrack.errors.Transient" for r in runs)
    for_good, retried = manual_ledger.store.alerts.failed_started_since(clock.now() - 24 * 3600 * S)
    assert (for_good, retried) == (0, 3)


def test_the_streak_counts_ticks_whose_last_attempt_failed(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)

    @runner.job("board:down", provider="board", every="1h", retry=POLICY)
    def down(run: Run) -> None:
        raise Transient(f"503 on attempt {run.attempt}")

    for tick in (1, 2):
        runner.run_once()
        for _ in range(2):
            clock.advance(10 * S)
            runner.run_once()
        job = manual_ledger.get_job("board:down")
        assert job is not None and job.consecutive_failures == tick  # 3 attempts, 1 tick
        assert health(manual_ledger, "board:down") is HealthState.FAILING
        clock.advance(timedelta(hours=1))
    strip = manual_ledger.recent_outcomes(["board:down"])["board:down"]
    assert [o.note for o in strip] == [None, "retried", "retried"] * 2
    for_good, retried = manual_ledger.store.alerts.failed_started_since(clock.now() - 24 * 3600 * S)
    assert (for_good, retried) == (2, 4)


def test_a_rate_limit_is_a_provider_pause_not_a_failure(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)

    @runner.job("maps:geo", provider="maps", every="1h", retry=POLICY)
    def geo(run: Run) -> None:
        raise RateLimited("HTTP 429", retry_after=120)

    runner.run_once()
    (record,) = manual_ledger.list_runs(job="maps:geo").items
    assert (record.status, record.error_type) == (RunStatus.FAILED, "rate_limited")
    until = clock.now() + 120 * S
    assert record.error_details["paused_until"] == until.isoformat()  # JSON: ISO 8601
    assert failure_text(record.error_type, record.error_details) == (
        f"rate limited: provider paused until {until:%Y-%m-%d %H:%M:%S} UTC"
    )
    job = manual_ledger.get_job("maps:geo")
    assert job is not None and job.consecutive_failures == 0
    assert health(manual_ledger, "maps:geo") is HealthState.PAUSED
    (outcome,) = manual_ledger.recent_outcomes(["maps:geo"])["maps:geo"]
    assert outcome.note == "rate_limited"


def test_a_library_run_that_hits_a_rate_limit_is_named_so(manual_ledger: Ledger) -> None:
    with pytest.raises(RateLimited), manual_ledger.run("maps:lib", provider="maps"):
        raise RateLimited("HTTP 429")
    (record,) = manual_ledger.list_runs(job="maps:lib").items
    assert record.error_type == "rate_limited"
    job = manual_ledger.get_job("maps:lib")
    assert job is not None and job.consecutive_failures == 0
    with pytest.raises(ValueError, match="a crash"), manual_ledger.run("maps:lib", provider="maps"):
        raise ValueError("a crash")
    job = manual_ledger.get_job("maps:lib")
    assert job is not None and job.consecutive_failures == 1


def test_a_job_that_times_out_every_tick_turns_failing(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)

    @runner.job("board:slow", provider="board", every="1h", timeout=0.2)
    def slow(run: Run) -> None:
        while True:
            run.count("pages")

    for tick in (1, 2):
        assert runner.run_once().failed == 1
        job = manual_ledger.get_job("board:slow")
        assert job is not None and job.consecutive_failures == tick
        clock.advance(timedelta(hours=1))
    assert health(manual_ledger, "board:slow") is HealthState.FAILING
    assert {r.error_type for r in manual_ledger.list_runs(job="board:slow").items} == {"timeout"}


def test_queued_runs_alone_are_not_running_and_do_not_hide_lateness(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    with manual_ledger.run("board:queued", provider="board"):
        pass
    manual_ledger.expect("board:queued", success_within="1h")
    clock.advance(timedelta(hours=2))
    manual_ledger.trigger("board:queued", params={"q": "a"})
    manual_ledger.trigger("board:queued", params={"q": "b"})
    # Two runs wait for a worker that never comes: the job is late, and says so.
    queued = manual_ledger.job_health("board:queued")
    assert queued.state is HealthState.LATE and queued.reason.endswith("2 run(s) queued")
    assert manual_ledger.healths()["board:queued"] == queued
    state = manual_ledger.job_state("board:queued")
    assert (state.active_runs, state.running_runs) == (2, 0)
    run = manual_ledger.claim({"board:queued": 1})
    assert run is not None
    assert health(manual_ledger, "board:queued") is HealthState.RUNNING
    assert manual_ledger.job_health("board:queued").reason == "1 run(s) running"
    states = {s.job.key: s for s in manual_ledger.job_states()}
    assert (states["board:queued"].active_runs, states["board:queued"].running_runs) == (2, 1)
    manual_ledger.finish_run(run)
