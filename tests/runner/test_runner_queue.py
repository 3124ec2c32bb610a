"""Issue 17: a runner works the queue. It claims pending runs of the jobs it
registered, calls the job with the run (params, window), finalizes it like a
tick (retries included), wakes within a second of a trigger, and with
``concurrency`` runs several at once."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta

import pytest
from runner_loop import running, wait_until_done

from runtrack import Ledger, ManualClock, Run, RunStatus, Transient
from runtrack.runner import Runner
from runtrack.runner.retry import RetryPolicy

YEARLY = "0 0 1 1 *"  # registered, but never due within a test


def test_run_once_runs_a_triggered_run_with_its_params(manual_ledger: Ledger) -> None:
    seen: list[tuple[object, object]] = []
    runner = Runner(manual_ledger, reap_every=None, prune_every=None, check_every=None)

    @runner.job("queue:params", provider="acme", cron=YEARLY)
    def job(run: Run) -> None:
        seen.append((run.params, run.window.end))
        run.count("pages", 2)

    runner.run_once()  # schedules the job (first tick next year)
    queued = manual_ledger.trigger("queue:params", params={"q": "rust"}, by="user:ana")
    summary = runner.run_once()
    record = manual_ledger.get_run(queued.id)
    assert record.status is RunStatus.SUCCESS and record.counters == {"pages": 2}
    assert record.triggered_by == "user:ana" and record.worker_id == runner.worker_id
    assert seen == [({"q": "rust"}, record.window_end)]
    assert summary.ran == 1


def test_a_queued_run_that_fails_is_retried_with_its_params(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    calls: list[object] = []
    runner = Runner(
        manual_ledger,
        retry=RetryPolicy(max_attempts=2, initial=1.0, jitter=0.0),
        reap_every=None,
        prune_every=None,
        check_every=None,
    )

    @runner.job("queue:flaky", provider="acme", cron=YEARLY)
    def job(run: Run) -> None:
        calls.append(run.params)
        if len(calls) == 1:
            raise Transient("503")

    runner.run_once()
    queued = manual_ledger.trigger("queue:flaky", params={"page": 7})
    runner.run_once()
    clock.advance(timedelta(seconds=2))
    runner.run_once()
    assert calls == [{"page": 7}, {"page": 7}]
    runs = manual_ledger.list_runs(job="queue:flaky").items
    assert [r.status for r in runs] == [RunStatus.SUCCESS, RunStatus.FAILED]
    assert runs[0].retry_of == queued.id and runs[0].params == {"page": 7}


def test_an_idle_runner_picks_a_trigger_up_within_a_second(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=0.2) as ledger:
        runner = Runner(ledger, poll_interval=0.5, check_every=None, max_sleep=30)
        runner.job("queue:idle", provider="acme", cron=YEARLY)(lambda run: None)
        with running(runner):
            time.sleep(1.0)  # idle: the next tick is next year
            queued = ledger.trigger("queue:idle")
            wait_until_done(ledger, [queued.id])
        record = ledger.get_run(queued.id)
        assert record.status is RunStatus.SUCCESS
        assert record.started_at is not None
        assert (record.started_at - record.created_at).total_seconds() <= 1.0


def test_a_trigger_while_the_job_runs_starts_right_after_it(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=0.2) as ledger:
        runner = Runner(ledger, poll_interval=0.2, check_every=None)
        started = threading.Event()

        @runner.job("queue:busy", provider="acme", cron=YEARLY)
        def job(run: Run) -> None:
            started.set()
            time.sleep(0.5 if run.params else 0.0)

        runner.run_once()  # registers the job
        with running(runner):
            first = ledger.trigger("queue:busy", params={"slow": True})
            assert started.wait(10)
            second = ledger.trigger("queue:busy")  # the job is running: queued behind it
            assert ledger.get_run(second.id).status is RunStatus.PENDING
            wait_until_done(ledger, [first.id, second.id])
        before, after = ledger.get_run(first.id), ledger.get_run(second.id)
        assert before.status is after.status is RunStatus.SUCCESS
        assert before.finished_at is not None and after.started_at is not None
        assert timedelta(0) <= after.started_at - before.finished_at <= timedelta(seconds=1)


def test_concurrency_runs_three_slow_jobs_side_by_side(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=0.2) as ledger:
        runner = Runner(ledger, concurrency=3, poll_interval=0.2, check_every=None)
        for n in range(3):
            runner.job(f"queue:slow{n}", provider="acme", cron=YEARLY)(lambda run: time.sleep(1.0))
        runner.run_once()  # registers the jobs
        queued = [ledger.trigger(f"queue:slow{n}").id for n in range(3)]
        with running(runner):
            wait_until_done(ledger, queued)
        records = [ledger.get_run(i) for i in queued]
        assert all(r.status is RunStatus.SUCCESS for r in records)
        latest_start = max(r.started_at for r in records if r.started_at)
        earliest_end = min(r.finished_at for r in records if r.finished_at)
        assert latest_start < earliest_end  # all three were running at once


def test_a_slow_job_does_not_delay_another_jobs_ticks(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=0.2) as ledger:
        runner = Runner(ledger, concurrency=2, poll_interval=0.2, check_every=None, jitter=0)
        runner.job("queue:slowest", provider="acme", cron=YEARLY)(lambda run: time.sleep(3.0))
        runner.job("queue:ticker", provider="acme", every=0.5)(lambda run: None)
        runner.run_once()
        slow = ledger.trigger("queue:slowest")
        with running(runner):
            wait_until_done(ledger, [slow.id])
        slow_run = ledger.get_run(slow.id)
        ticks = [
            r.started_at
            for r in reversed(ledger.list_runs(job="queue:ticker", limit=100).items)
            if r.started_at is not None
            and slow_run.started_at is not None
            and slow_run.finished_at is not None
            and slow_run.started_at <= r.started_at <= slow_run.finished_at
        ]
        assert len(ticks) >= 4, ticks  # every 0.5 s through the slow run's 3 s
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ticks)]
        assert max(gaps) <= 0.5 + 0.2 + 0.3, gaps


@pytest.mark.parametrize("bad", [0, -1, 1000, "2"])
def test_a_bad_concurrency_is_refused(manual_ledger: Ledger, bad: object) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Runner(manual_ledger, concurrency=bad)  # type: ignore[arg-type]


def test_a_stop_ends_every_run_side_by_side_gracefully(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=0.1) as ledger:
        runner = Runner(ledger, concurrency=3, poll_interval=0.1, grace=0.3, check_every=None)

        def forever(run: Run) -> None:
            while True:
                run.count("pages")
                time.sleep(0.02)

        for n in range(3):
            runner.job(f"queue:forever{n}", provider="acme", cron=YEARLY)(forever)
        runner.run_once()
        queued = [ledger.trigger(f"queue:forever{n}").id for n in range(3)]
        loop = threading.Thread(target=runner.run_forever, kwargs={"handle_signals": False})
        loop.start()
        deadline = time.monotonic() + 20
        while len(ledger.active_runs()) < 3 or any(
            ledger.get_run(i).status is RunStatus.PENDING for i in queued
        ):
            assert time.monotonic() < deadline, "the three runs never ran together"
            time.sleep(0.05)
        stopped = time.monotonic()
        runner.stop()
        loop.join(10)
        assert not loop.is_alive()
        assert time.monotonic() - stopped < 5
        records = [ledger.get_run(i) for i in queued]
        assert all(
            (r.status, r.error_type) == (RunStatus.CANCELLED, "shutdown") for r in records
        ), records
