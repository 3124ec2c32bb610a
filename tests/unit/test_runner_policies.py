"""Pure decisions: schedule arithmetic, error classification and retry
delays (no database)."""

from __future__ import annotations

import urllib.error
from datetime import UTC, datetime, timedelta
from email.message import Message

import httpx
import pytest
import requests

from runtrack import Fatal, RateLimited, RetryPolicy, Transient
from runtrack.runner.retry import Action, ErrorClass, Verdict, default_classifier, streak_backoff
from runtrack.runner.schedule import Cron, Every

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def test_every_stays_on_its_grid() -> None:
    every = Every(timedelta(minutes=15))
    assert every.first_due(T0) == T0
    assert every.next_after(T0, T0) == T0 + timedelta(minutes=15)
    # A run that took 4 minutes does not shift the grid.
    assert every.next_after(T0, T0 + timedelta(minutes=4)) == T0 + timedelta(minutes=15)


def test_late_ticks_catch_up_then_coalesce() -> None:
    every = Every(timedelta(minutes=15))
    late = T0 + timedelta(minutes=16)  # the 12:15 tick fell due meanwhile
    assert every.next_after(T0, late, catchup=1) == T0 + timedelta(minutes=15)
    assert every.next_after(T0, late, catchup=0) == T0 + timedelta(minutes=30)
    # Two hours without a runner: the last `catchup` missed ticks still run.
    down = T0 + timedelta(hours=2, minutes=1)
    assert every.next_after(T0, down, catchup=0) == T0 + timedelta(hours=2, minutes=15)
    assert every.next_after(T0, down, catchup=1) == T0 + timedelta(hours=2)
    assert every.next_after(T0, down, catchup=3) == T0 + timedelta(hours=1, minutes=30)
    assert every.next_after(T0, down, catchup=100) == T0 + timedelta(minutes=15)
    cron = Cron("*/15 * * * *")
    assert cron.next_after(T0, late, catchup=1) == T0 + timedelta(minutes=15)
    assert cron.next_after(T0, late, catchup=0) == T0 + timedelta(minutes=30)
    assert cron.next_after(T0, down, catchup=0) == T0 + timedelta(hours=2, minutes=15)
    assert cron.next_after(T0, down, catchup=3) == T0 + timedelta(hours=1, minutes=30)
    assert cron.next_after(T0, down, catchup=100) == T0 + timedelta(minutes=15)


def test_transient_delays_grow_up_to_the_limit() -> None:
    policy = RetryPolicy(max_attempts=5, initial=10, multiplier=2, max_delay=35, jitter=0)
    decisions = [policy.decide(n, Transient("blip")) for n in range(1, 6)]
    assert [d.action for d in decisions] == [Action.RETRY] * 4 + [Action.GIVE_UP]
    assert [d.delay.total_seconds() for d in decisions[:4]] == [10, 20, 35, 35]
    assert "all 5 attempt(s) used" in decisions[-1].reason


def test_jitter_stays_within_its_bound() -> None:
    policy = RetryPolicy(initial=4, jitter=2)
    delays = {policy.delay(1) for _ in range(50)}
    assert all(4 <= d <= 6 for d in delays)
    assert len(delays) > 1


def test_fatal_and_unknown_errors_give_up_at_once() -> None:
    policy = RetryPolicy(max_attempts=10)
    assert policy.decide(1, Fatal("bad credentials")).action is Action.GIVE_UP
    unknown = policy.decide(1, KeyError("title"))
    assert (unknown.action, unknown.kind) == (Action.GIVE_UP, ErrorClass.FATAL)
    lenient = RetryPolicy(max_attempts=10, retry_unknown=True)
    assert lenient.decide(1, KeyError("title")).action is Action.RETRY


def test_rate_limits_pause_and_use_no_attempt() -> None:
    policy = RetryPolicy(max_attempts=1, rate_limit_pause=45)
    decision = policy.decide(1, RateLimited(retry_after=120))
    assert (decision.action, decision.delay) == (Action.PAUSE, timedelta(seconds=120))
    assert policy.decide(1, RateLimited(retry_after=0)).delay == timedelta(0)


def _httpx_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://api.example.test/offers")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


def _requests_error(status: int, headers: dict[str, str] | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    return requests.HTTPError(f"{status}", response=response)


@pytest.mark.parametrize("make", [_httpx_error, _requests_error])
def test_http_statuses_of_requests_and_httpx(make: object) -> None:
    assert callable(make)
    assert default_classifier(make(429, {"Retry-After": "30"})) == Verdict(
        ErrorClass.RATE_LIMITED, timedelta(seconds=30)
    )
    assert default_classifier(make(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == (
        Verdict(ErrorClass.RATE_LIMITED, None)
    )
    assert default_classifier(make(503)) == Verdict(ErrorClass.TRANSIENT)
    assert default_classifier(make(408)) == Verdict(ErrorClass.TRANSIENT)
    assert default_classifier(make(404)) == Verdict(ErrorClass.FATAL)
    policy = RetryPolicy(rate_limit_pause=90)
    assert policy.decide(1, make(429)).delay == timedelta(seconds=90)


def test_network_errors_are_transient() -> None:
    request = httpx.Request("GET", "https://api.example.test/")
    for error in (
        ConnectionResetError("reset"),
        TimeoutError("slow"),
        httpx.ConnectTimeout("slow", request=request),
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
    ):
        assert default_classifier(error) == Verdict(ErrorClass.TRANSIENT), error
    headers = Message()
    headers["Retry-After"] = "7"
    too_many = urllib.error.HTTPError("https://x.test", 429, "slow down", headers, None)
    assert default_classifier(too_many) == Verdict(ErrorClass.RATE_LIMITED, 7 * S)


def test_explicit_cause_is_classified_and_markers_win() -> None:
    wrapped = RuntimeError("fetching page 3 failed")
    wrapped.__cause__ = ConnectionResetError("reset by peer")
    assert default_classifier(wrapped) == Verdict(ErrorClass.TRANSIENT)
    wrapped.__cause__ = wrapped  # a cycle ends the walk
    assert default_classifier(wrapped) is None
    assert default_classifier(Fatal("no")) == Verdict(ErrorClass.FATAL)
    assert default_classifier(ValueError("x")) is None


def test_a_custom_classifier_comes_first_and_may_defer() -> None:
    def mine(error: BaseException) -> Verdict | None:
        if isinstance(error, KeyError):
            return Verdict(ErrorClass.TRANSIENT)
        return None

    policy = RetryPolicy(classifier=mine, jitter=0)
    assert policy.decide(1, KeyError("x")).action is Action.RETRY
    assert policy.decide(1, Fatal("x")).action is Action.GIVE_UP
    assert policy.as_dict()["classifier"].endswith("mine")


def test_failure_streak_backoff_doubles_and_is_capped() -> None:
    base = timedelta(minutes=1)
    assert streak_backoff(base, 0) == timedelta(0)
    assert [streak_backoff(base, n).total_seconds() for n in (1, 2, 3)] == [60, 120, 240]
    assert streak_backoff(base, 30) == 64 * base
