"""Retries: each attempt is its own run; Transient retries with growing
delays up to the limit, Fatal never, RateLimited pauses the provider and uses
no attempt."""

from __future__ import annotations

import itertools
from datetime import timedelta

import httpx

from runtrack import (
    Fatal,
    Ledger,
    ManualClock,
    RateLimited,
    RetryPolicy,
    Run,
    Runner,
    RunStatus,
    Transient,
)

S = timedelta(seconds=1)
POLICY = RetryPolicy(max_attempts=4, initial=10, multiplier=3, max_delay=600, jitter=0)


def test_transient_is_retried_with_growing_delays(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)

    @runner.job("board:feed", provider="board", every="1h", retry=POLICY)
    def feed(run: Run) -> None:
        run.count("pages")
        raise Transient(f"502 on attempt {run.attempt}")

    first = runner.run_once()
    assert (first.failed, first.retries) == (1, 1)
    for delay in (10, 30, 90):  # 10 * 3**(n-1)
        clock.advance((delay - 1) * S)
        assert runner.run_once().ran == 0, f"retry ran before its {delay} s delay"
        clock.advance(S)
        assert runner.run_once().failed == 1
    clock.advance(timedelta(minutes=30))
    assert runner.run_once().ran == 0  # all 4 attempts used; the next tick is at 1h

    runs = sorted(manual_ledger.list_runs(job="board:feed").items, key=lambda r: r.id)
    assert [r.attempt for r in runs] == [1, 2, 3, 4]
    assert [r.retry_of for r in runs] == [None, runs[0].id, runs[1].id, runs[2].id]
    assert [r.triggered_by for r in runs] == ["schedule", "retry", "retry", "retry"]
    assert all(r.status is RunStatus.FAILED and r.counters == {"pages": 1} for r in runs)
    assert [r.error_message for r in runs][-1] == "502 on attempt 4"
    gaps = [(b.created_at - a.created_at).total_seconds() for a, b in itertools.pairwise(runs)]
    assert gaps == [10, 30, 90]
    assert all(r.retry_policy == POLICY.as_dict() for r in runs)
    assert runs[0].retry_policy is not None and runs[0].retry_policy["max_attempts"] == 4


def test_a_retry_that_succeeds_ends_the_chain(manual_ledger: Ledger, clock: ManualClock) -> None:
    runner = Runner(manual_ledger)
    attempts: list[int] = []

    @runner.job("board:once-flaky", provider="board", every="1h", retry=POLICY)
    def once_flaky(run: Run) -> None:
        attempts.append(run.attempt)
        if run.attempt == 1:
            raise ConnectionResetError("connection reset by peer")

    runner.run_once()
    clock.advance(10 * S)
    assert runner.run_once().succeeded == 1
    clock.advance(timedelta(minutes=10))
    assert runner.run_once().ran == 0
    assert attempts == [1, 2]


def test_fatal_and_unknown_errors_are_not_retried(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)

    @runner.job("board:auth", provider="board", every="1h", retry=POLICY)
    def auth(run: Run) -> None:
        raise Fatal("401: API key revoked")

    @runner.job("board:bug", provider="board", every="1h", retry=POLICY)
    def bug(run: Run) -> None:
        raise KeyError("title")

    summary = runner.run_once()
    assert (summary.failed, summary.retries) == (2, 0)
    clock.advance(timedelta(minutes=20))
    assert runner.run_once().ran == 0
    assert manual_ledger.count_runs() == 2


def test_http_503_from_httpx_is_retried(manual_ledger: Ledger, clock: ManualClock) -> None:
    runner = Runner(manual_ledger)

    @runner.job("board:api", provider="board", every="1h", retry=POLICY)
    def api(run: Run) -> None:
        request = httpx.Request("GET", "https://board.example.test/offers")
        response = httpx.Response(503, request=request)
        response.raise_for_status()

    assert runner.run_once().retries == 1
    clock.advance(10 * S)
    assert runner.run_once().failed == 1
    assert manual_ledger.count_runs(job="board:api") == 2


def test_rate_limited_pauses_the_provider_and_uses_no_attempt(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger, retry=RetryPolicy.never())
    calls = {"limited": 0, "other": 0}

    @runner.job("amazon:lookup", provider="amazon", every="1h")
    def lookup(run: Run) -> None:
        calls["limited"] += 1
        if calls["limited"] == 1:
            raise RateLimited(retry_after=120)

    @runner.job("amazon:prices", provider="amazon", cron="* * * * *")  # first due at 00:01
    def prices(run: Run) -> None:
        calls["other"] += 1

    t0 = clock.now()
    first = runner.run_once()
    assert (first.failed, first.retries) == (1, 1)
    pause = manual_ledger.paused("amazon")
    assert pause is not None and pause.until == t0 + 120 * S
    assert "rate limited" in pause.reason and "amazon:lookup" in pause.reason

    clock.advance(60 * S)
    assert (runner.run_once().ran, runner.run_once().skipped_paused) == (0, 1)  # prices waits
    clock.advance(59 * S)
    assert runner.run_once().ran == 0  # lookup's re-run waits for the pause too
    clock.advance(S)
    summary = runner.run_once()
    assert (summary.succeeded, summary.skipped_paused) == (2, 0)  # never() allowed it
    runs = sorted(manual_ledger.list_runs(job="amazon:lookup").items, key=lambda r: r.id)
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "success")]
    assert runs[0].error_type == "rate_limited"  # issue 18: the rate limit is named, not the class
    assert runs[1].retry_of == runs[0].id
    assert calls == {"limited": 2, "other": 1}


def test_a_retry_overtaken_by_a_newer_run_is_dropped(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)
    slow = RetryPolicy(max_attempts=3, initial=600, max_delay=600, jitter=0)

    @runner.job("board:x", provider="board", every="5m", retry=slow)
    def flaky(run: Run) -> None:
        if manual_ledger.count_runs(job="board:x") == 1:  # only the very first run
            raise Transient("blip")

    runner.run_once()  # fails; retry in 10 minutes
    clock.advance(timedelta(minutes=5))
    assert runner.run_once().succeeded == 1  # the next tick ran and succeeded
    clock.advance(timedelta(minutes=5))
    summary = runner.run_once()
    assert summary.ran == 1  # the 10-minute tick, not the stale retry
    attempts = [r.attempt for r in manual_ledger.list_runs(job="board:x").items]
    assert attempts == [1, 1, 1]


def test_a_rate_limit_never_shortens_a_longer_pause(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)

    @runner.job("amazon:lookup", provider="amazon", every="1h")
    def lookup(run: Run) -> None:
        # Meanwhile an operator (or another worker) paused amazon for a day.
        manual_ledger.pause("amazon", for_="1d", reason="contract renegotiation", by="ops")
        raise RateLimited(retry_after=60)

    assert runner.run_once().failed == 1
    pause = manual_ledger.paused("amazon")
    assert pause is not None
    assert (pause.until, pause.reason) == (
        clock.now() + timedelta(days=1),
        "contract renegotiation",
    )


class SilentLimit(RateLimited):
    """A rate limit whose text cannot be had (its ``__str__`` raises)."""

    def __str__(self) -> str:
        raise ZeroDivisionError


def test_a_rate_limit_that_cannot_describe_itself_still_pauses_the_provider(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger)

    @runner.job("amazon:silent", provider="amazon", every="1h")
    def lookup(run: Run) -> None:
        raise SilentLimit(retry_after=120, message="x")

    t0 = clock.now()
    summary = runner.run_once()
    assert (summary.failed, summary.retries) == (1, 1)
    (record,) = manual_ledger.list_runs(job="amazon:silent").items
    assert record.status is RunStatus.FAILED
    assert record.error_type == "rate_limited"  # issue 18: named as a rate limit
    pause = manual_ledger.paused("amazon")
    assert pause is not None and pause.until == t0 + 120 * S
    assert "SilentLimit" in pause.reason
