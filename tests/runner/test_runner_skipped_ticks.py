"""Every claimed tick runs or is recorded as skipped, with its reason (issue
21): a tick that finds the job's slots held (by another process's run) or its
provider at its limit is skipped, as before, and counted on the job row with
the time (the ledger's clock) and the reason; a tick that runs counts nothing.
A failure to record it is logged and the runner goes on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from runtrack import JobBusy, Ledger, ManualClock, RetryPolicy, Run, Runner, Transient
from runtrack.runner.execution import Attempt
from runtrack.runner.skips import busy_reason, note_busy

MIN = timedelta(minutes=1)


def noop(run: Run) -> None:
    run.count("n", 1)


@pytest.fixture
def runner_ledger(db_url: str, clock: ManualClock) -> Iterator[Ledger]:
    """The runner's ledger on the hand-moved clock. Its stale threshold is an
    hour: the other process's held run must not be reaped as the clock moves
    minutes ahead of that process's next heartbeat."""
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05, stale_after="1h") as opened:
        yield opened


def skipped(ledger: Ledger, job: str) -> tuple[int, object, str | None]:
    record = ledger.get_job(job)
    assert record is not None
    return record.ticks_skipped, record.last_skipped_at, record.last_skip_reason


def test_a_tick_that_finds_the_job_busy_is_recorded_with_its_reason(
    runner_ledger: Ledger, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runtrack.runner")
    runner = Runner(runner_ledger)
    runner.job("board:slow", provider="board", every="1m")(noop)
    assert runner.run_once().ran == 1  # the first tick runs: nothing skipped
    assert skipped(runner_ledger, "board:slow") == (0, None, None)

    # Another process (its own ledger) holds the job's only slot.
    with Ledger(runner_ledger.url, clock=clock, heartbeat_interval=0.05) as other:
        holder = other.start_run("board:slow", provider="board")
        clock.advance(MIN)
        first_skip = clock.now()
        summary = runner.run_once()
        assert (summary.ran, summary.skipped_busy) == (0, 1)
        reason = f"busy: 1 of 1 slot held by run {holder.id}"
        assert skipped(runner_ledger, "board:slow") == (1, first_skip, reason)
        told = f"job board:slow is busy: tick skipped ({reason})"
        assert told in [r.getMessage() for r in caplog.records]  # and in the log, as before
        assert runner.run_once().skipped_busy == 0  # consumed, not queued: counted once

        clock.advance(MIN)  # the next tick finds it busy too: the count grows
        assert runner.run_once().skipped_busy == 1
        assert skipped(runner_ledger, "board:slow") == (2, clock.now(), reason)
        other.finish_run(holder)

    clock.advance(MIN)  # a tick that runs does not count
    assert runner.run_once().ran == 1
    assert skipped(runner_ledger, "board:slow") == (2, first_skip + MIN, reason)


def test_every_held_slot_is_named(runner_ledger: Ledger, clock: ManualClock) -> None:
    runner = Runner(runner_ledger)
    runner.job("board:pair", provider="board", every="1m", concurrency=2)(noop)
    with Ledger(runner_ledger.url, clock=clock, heartbeat_interval=0.05) as other:
        held = [other.start_run("board:pair", provider="board", concurrency=2) for _ in range(2)]
        assert runner.run_once().skipped_busy == 1
        a, b = sorted(run.id for run in held)
        assert skipped(runner_ledger, "board:pair") == (
            1,
            clock.now(),
            f"busy: 2 of 2 slots held by runs {a}, {b}",
        )
        for run in held:
            other.finish_run(run)


def test_a_tick_that_finds_its_provider_at_its_limit_is_recorded(
    runner_ledger: Ledger, clock: ManualClock
) -> None:
    runner_ledger.limit_provider("acme", 1)
    runner = Runner(runner_ledger)
    runner.job("acme:feed", provider="acme", every="1m")(noop)
    with Ledger(runner_ledger.url, clock=clock, heartbeat_interval=0.05) as other:
        holder = other.start_run("acme:other", provider="acme")  # another job of acme
        summary = runner.run_once()
        assert (summary.ran, summary.skipped_busy) == (0, 1)
        assert skipped(runner_ledger, "acme:feed") == (
            1,
            clock.now(),
            "provider acme at its limit of 1 running run",
        )
        other.finish_run(holder)
    assert skipped(runner_ledger, "acme:other") == (0, None, None)  # the holder skipped nothing
    clock.advance(MIN)
    assert runner.run_once().ran == 1
    assert skipped(runner_ledger, "acme:feed")[0] == 1


def test_a_retry_that_finds_the_job_busy_is_not_a_skipped_tick(
    runner_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(runner_ledger, retry=RetryPolicy(max_attempts=2, initial=60, jitter=0))

    @runner.job("board:flaky", provider="board", every="1h")
    def flaky(run: Run) -> None:
        raise Transient("502")

    assert runner.run_once().retries == 1
    with Ledger(runner_ledger.url, clock=clock, heartbeat_interval=0.05) as other:
        holder = other.start_run("board:flaky", provider="board")
        clock.advance(MIN)  # the retry is due, the job is busy: dropped, not a tick
        assert runner.run_once().skipped_busy == 1
        other.finish_run(holder)
    assert skipped(runner_ledger, "board:flaky") == (0, None, None)


def test_reasons_are_short_sentences() -> None:
    assert busy_reason(JobBusy("j", [7, 8, 9, 10, 11, 12, 13], 7)) == (
        "busy: 7 of 7 slots held by runs 7, 8, 9, 10, 11 and 2 more"
    )
    assert busy_reason(JobBusy("j", [], 1)) == "busy: all 1 slot held"
    assert busy_reason(None) == "busy"


def test_a_skip_that_cannot_be_recorded_is_logged_and_the_runner_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A real database that cannot be reached (nothing listens on port 1).
    with Ledger("postgresql://postgres@127.0.0.1:1/none", migrate=False) as down:
        runner = Runner(down)
        runner.job("board:slow", provider="board", every="1m")(noop)
        spec = runner.jobs[0]
        now = datetime(2026, 1, 1, tzinfo=UTC)
        with caplog.at_level(logging.INFO, logger="runtrack.runner"):
            note_busy(down, Attempt(spec, due=now, tick=now), JobBusy("board:slow", [5], 1))
    [record] = caplog.records  # one line, a warning: the runner goes on
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "job board:slow is busy: tick skipped (busy: 1 of 1 slot held by run 5), "
        "not recorded: database error"
    )
