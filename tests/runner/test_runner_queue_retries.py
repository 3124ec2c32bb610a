"""Issue 17: the retries of a run claimed from the queue.

A retry of a queued run repeats it: the same params and the same window
(a trigger's fixed window, a re-run's, a backfill's), with the same rule for
the watermark (a fixed window moves it only if it starts exactly at it), and
stays a window of its backfill. It is queued again once its delay has passed.
A claimed run counts its retry budget as a scheduled run does: from its
``attempt``, less the rate-limited attempts before it (a pause uses none);
a re-run is a new request, with a budget of its own.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtrack import Fatal, InvalidInput, Ledger, ManualClock, Run, RunStatus, Transient
from runtrack.backfills import BackfillState
from runtrack.models import RATE_LIMITED
from runtrack.runner import Runner
from runtrack.runner.retry import RetryPolicy

YEARLY = "0 0 1 1 *"  # registered, but never due within a test
HOUR = timedelta(hours=1)
JOB = "retry:window"

Seen = tuple[datetime | None, datetime | None, Any, int]


def make_runner(ledger: Ledger, plan: list[Exception | None], max_attempts: int) -> Runner:
    """A runner of ``JOB`` whose calls fail as ``plan`` says (then succeed);
    each call's window, params and attempt land in ``runner.seen``."""
    runner = Runner(
        ledger,
        retry=RetryPolicy(max_attempts=max_attempts, initial=1.0, jitter=0.0),
        reap_every=None,
        prune_every=None,
        check_every=None,
    )
    seen: list[Seen] = []

    @runner.job(JOB, provider="acme", cron=YEARLY)
    def job(run: Run) -> None:
        seen.append((run.window.start, run.window.end, run.params, run.attempt))
        error = plan.pop(0) if plan else None
        if error is not None:
            raise error

    runner.seen = seen  # type: ignore[attr-defined]
    runner.run_once()  # schedules the job (first tick next year)
    return runner


def seen_by(runner: Runner) -> list[Seen]:
    return runner.seen  # type: ignore[attr-defined,no-any-return]


def set_watermark(ledger: Ledger, clock: ManualClock) -> datetime:
    """A live run that succeeds: the watermark is now; then two hours pass."""
    with ledger.run(JOB, provider="acme"):
        pass
    watermark = ledger.get_job(JOB).watermark
    assert watermark is not None
    clock.advance(2 * HOUR)
    return watermark


def retry_due(runner: Runner, clock: ManualClock) -> None:
    clock.advance(timedelta(seconds=5))  # past the retry's delay
    runner.run_once()


@pytest.mark.parametrize("origin", ["trigger_at_watermark", "trigger_past", "rerun", "backfill"])
def test_the_retry_of_a_fixed_window_runs_that_window(
    manual_ledger: Ledger, clock: ManualClock, origin: str
) -> None:
    ledger = manual_ledger
    plan: list[Exception | None] = [Transient("503")]
    if origin == "rerun":
        plan.insert(0, Fatal("bad page"))  # the original fails for good first
    runner = make_runner(ledger, plan, max_attempts=3)
    watermark = set_watermark(ledger, clock)
    params: dict[str, Any] | None = {"page": 3}
    start = watermark if origin == "trigger_at_watermark" else watermark - 5 * HOUR
    end = start + HOUR
    backfill_id = None
    if origin == "backfill":
        backfill_id = ledger.backfill(JOB, start, end, every="1h").id
        params = None
    else:
        first = ledger.trigger(JOB, params=params, window_start=start, window_end=end)
        if origin == "rerun":
            runner.run_once()  # fails for good
            assert ledger.get_run(first.id).status is RunStatus.FAILED
            ledger.rerun(first.id)
    runner.run_once()  # fails, a retry is scheduled
    retry_due(runner, clock)

    calls = seen_by(runner)[-2:]
    assert calls == [(start, end, params, 1), (start, end, params, 2)]
    failed, retried = ledger.list_runs(job=JOB).items[1::-1]
    assert failed.status is RunStatus.FAILED and retried.status is RunStatus.SUCCESS
    assert retried.retry_of == failed.id and retried.attempt == 2
    assert retried.params == params and retried.backfill_id == backfill_id
    assert (retried.window_start, retried.window_end) == (start, end)
    moved = end if origin == "trigger_at_watermark" else watermark
    assert ledger.get_job(JOB).watermark == moved
    if backfill_id is not None:
        assert ledger.get_backfill(backfill_id).state is BackfillState.DONE


def test_a_retry_with_params_outlives_a_newer_run_of_its_job(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    """A newer run of the job (a tick, another trigger) does not cover a
    triggered run's params: its retry still runs."""
    runner = make_runner(manual_ledger, [Transient("503")], max_attempts=2)
    manual_ledger.trigger(JOB, params={"page": 7})
    runner.run_once()
    with manual_ledger.run(JOB, provider="acme"):
        pass
    retry_due(runner, clock)
    assert [call[2:] for call in seen_by(runner)] == [({"page": 7}, 1), ({"page": 7}, 2)]


def test_a_window_queued_again_meanwhile_is_not_retried_too(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    """A resume that queued the failed window before its retry was due: the
    window runs once more, not twice."""
    runner = make_runner(manual_ledger, [Transient("503")], max_attempts=3)
    watermark = set_watermark(manual_ledger, clock)
    start = watermark - 5 * HOUR
    backfill = manual_ledger.backfill(JOB, start, start + HOUR, every="1h")
    runner.run_once()
    assert manual_ledger.resume_backfill(backfill.id).progress.queued == 1
    retry_due(runner, clock)
    runner.run_once()
    assert len(seen_by(runner)) == 2 and manual_ledger.count_runs(job=JOB) == 3
    assert manual_ledger.get_backfill(backfill.id).state is BackfillState.DONE


def test_a_cancelled_backfill_does_not_get_its_window_retried(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = make_runner(manual_ledger, [Transient("503")], max_attempts=3)
    watermark = set_watermark(manual_ledger, clock)
    backfill = manual_ledger.backfill(JOB, watermark - 5 * HOUR, watermark - 4 * HOUR, every="1h")
    runner.run_once()
    manual_ledger.cancel_backfill(backfill.id)
    retry_due(runner, clock)
    assert len(seen_by(runner)) == 1 and manual_ledger.count_runs(job=JOB) == 2
    assert manual_ledger.pending_count([JOB]) == 0


def test_only_a_failed_run_is_queued_again(manual_ledger: Ledger) -> None:
    make_runner(manual_ledger, [], max_attempts=2)
    with manual_ledger.run(JOB, provider="acme") as run:
        pass
    with pytest.raises(InvalidInput):
        manual_ledger.retry_queued(run.id)


# -- the retry budget of a claimed run ---------------------------------------------


def failed_run(ledger: Ledger, error_type: str | None = None) -> int:
    run = ledger.start_run(JOB, provider="acme")
    ledger.finish_run(run, RunStatus.FAILED, error="503", error_type=error_type)
    return run.id


@pytest.mark.parametrize("max_attempts", [2, 3])
def test_a_claimed_retry_counts_the_attempts_before_it(
    manual_ledger: Ledger, clock: ManualClock, max_attempts: int
) -> None:
    """A queued attempt 2 (``create_run(attempt=2, retry_of=...)``, or a
    retry another runner queued) has one attempt of its budget behind it."""
    runner = make_runner(manual_ledger, [Transient("503")], max_attempts=max_attempts)
    first = failed_run(manual_ledger)
    queued = manual_ledger.create_run(JOB, provider="acme", attempt=2, retry_of=first)
    runner.run_once()
    retry_due(runner, clock)
    runs = manual_ledger.list_runs(job=JOB).items
    if max_attempts == 2:  # attempt 2 of 2 failed: no retry
        assert [r.id for r in runs] == [queued.id, first]
        assert [call[3] for call in seen_by(runner)] == [2]
    else:
        assert [(r.attempt, r.retry_of) for r in runs[:2]] == [(3, queued.id), (2, first)]
        assert [call[3] for call in seen_by(runner)] == [2, 3]


def test_a_rate_limited_attempt_before_a_claimed_run_uses_no_budget(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = make_runner(manual_ledger, [Transient("503")], max_attempts=2)
    first = failed_run(manual_ledger, error_type=RATE_LIMITED)
    queued = manual_ledger.create_run(JOB, provider="acme", attempt=2, retry_of=first)
    runner.run_once()
    retry_due(runner, clock)
    latest = manual_ledger.list_runs(job=JOB).items[0]
    assert (latest.attempt, latest.retry_of, latest.status) == (3, queued.id, RunStatus.SUCCESS)


def test_a_rerun_has_a_budget_of_its_own(manual_ledger: Ledger, clock: ManualClock) -> None:
    """Pinned: a re-run is a new request (attempt 1, like a new tick), even
    of a run that used up its retries."""
    plan: list[Exception | None] = [Transient("a"), Transient("b"), Transient("c")]
    runner = make_runner(manual_ledger, plan, max_attempts=2)
    original = manual_ledger.trigger(JOB, params={"page": 1})
    runner.run_once()
    retry_due(runner, clock)  # attempt 2 of 2 fails: given up
    retry_due(runner, clock)
    rerun = manual_ledger.rerun(original.id)
    assert rerun.attempt == 1 and rerun.retry_of is None
    runner.run_once()  # the re-run's attempt 1 fails: retried
    retry_due(runner, clock)
    assert [call[3] for call in seen_by(runner)] == [1, 2, 1, 2]
    assert manual_ledger.list_runs(job=JOB).items[0].status is RunStatus.SUCCESS


def test_side_by_side_a_retry_runs_its_window(db_url: str) -> None:
    """With ``concurrency`` above 1 (run_forever's other cycle) too."""
    with Ledger(db_url, heartbeat_interval=0.2) as ledger:
        runner = Runner(
            ledger,
            concurrency=2,
            poll_interval=0.2,
            retry=RetryPolicy(max_attempts=2, initial=0.0, jitter=0.0),
            check_every=None,
        )
        seen: list[tuple[datetime | None, datetime | None]] = []

        @runner.job(JOB, provider="acme", cron=YEARLY)
        def job(run: Run) -> None:
            seen.append((run.window.start, run.window.end))
            if len(seen) == 1:
                raise Transient("503")

        start = datetime(2025, 1, 1, tzinfo=UTC)
        ledger.ensure_job(JOB, provider="acme")
        ledger.trigger(JOB, window_start=start, window_end=start + HOUR)
        loop = threading.Thread(target=runner.run_forever, kwargs={"handle_signals": False})
        loop.start()
        try:
            deadline = time.monotonic() + 30
            while len(seen) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            runner.stop()
            loop.join(30)
        assert seen == [(start, start + HOUR)] * 2
        latest = ledger.list_runs(job=JOB).items[0]
        assert (latest.attempt, latest.triggered_by) == (2, "retry")
