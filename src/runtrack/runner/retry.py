"""Retry decisions, pure: which errors are worth another attempt, and when.

An error is *classified* (:class:`Verdict`) as transient, fatal or rate
limited; a frozen :class:`RetryPolicy` turns the verdict and the attempt
number into a :class:`Decision` without any I/O. Delays come from tenacity's
wait functions (exponential, plus random jitter), not from a hand-written
formula.

The default classifier honours the markers in :mod:`runtrack.errors`
(:class:`~runtrack.errors.Transient`, :class:`~runtrack.errors.Fatal`,
:class:`~runtrack.errors.RateLimited`), maps ``ConnectionError`` and
``TimeoutError`` to transient, and HTTP 429 / 408 / 5xx of requests, httpx
and urllib to rate limited / transient. requests and httpx are never
imported: an exception of theirs can only exist if the caller imported them,
so the classifier looks them up in ``sys.modules``. Errors it does not know
are fatal unless the policy says ``retry_unknown=True``.
"""

from __future__ import annotations

import math
import sys
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tenacity import RetryCallState, Retrying, wait_exponential, wait_random

from runtrack.errors import Fatal, InvalidInput, RateLimited, Transient, describe
from runtrack.models import JobRecord

__all__ = [
    "Action",
    "Classifier",
    "Decision",
    "ErrorClass",
    "RetryPolicy",
    "Verdict",
    "default_classifier",
    "streak_backoff",
]


class ErrorClass(StrEnum):
    """What kind of failure an error is."""

    TRANSIENT = "transient"
    FATAL = "fatal"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A classified error. ``retry_after`` only for rate limits (``None``:
    the policy's ``rate_limit_pause``)."""

    kind: ErrorClass
    retry_after: timedelta | None = None


#: Classifies an error, or returns ``None`` to leave it to the default classifier.
Classifier = Callable[[BaseException], Verdict | None]


class Action(StrEnum):
    RETRY = "retry"  # run the job again after ``delay``; one attempt used
    PAUSE = "pause"  # pause the provider for ``delay``, then run again; no attempt used
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a failed attempt."""

    action: Action
    kind: ErrorClass
    delay: timedelta
    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a job retries. All durations are seconds.

    ``max_attempts`` counts the first attempt (1 = never retry). The n-th
    retry waits ``initial * multiplier ** (n - 1)`` seconds, at most
    ``max_delay``, plus up to ``jitter`` random seconds so that many workers
    do not retry in lockstep. Rate limits never use an attempt.
    """

    max_attempts: int = 3
    initial: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: float = 1.0
    rate_limit_pause: float = 60.0
    retry_unknown: bool = False
    classifier: Classifier | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise InvalidInput("max_attempts", f"got {describe(self.max_attempts)}", "an int >= 1")
        if not 1 <= self.max_attempts <= 100:
            raise InvalidInput("max_attempts", f"got {self.max_attempts}", "1 to 100")
        _seconds("initial", self.initial, minimum=0.0)
        _seconds("multiplier", self.multiplier, minimum=1.0)
        _seconds("max_delay", self.max_delay, minimum=self.initial)
        _seconds("jitter", self.jitter, minimum=0.0)
        _seconds("rate_limit_pause", self.rate_limit_pause, minimum=0.0)
        if self.classifier is not None and not callable(self.classifier):
            raise InvalidInput(
                "classifier", f"got {describe(self.classifier)}", "a function error -> Verdict|None"
            )

    @classmethod
    def never(cls) -> RetryPolicy:
        """Do not retry (rate limits still pause the provider)."""
        return cls(max_attempts=1)

    def classify(self, error: BaseException) -> Verdict:
        """The policy's classifier, then the default one; unknown errors are
        fatal (or transient with ``retry_unknown``)."""
        verdict = self.classifier(error) if self.classifier is not None else None
        if verdict is None:
            verdict = default_classifier(error)
        if verdict is None:
            kind = ErrorClass.TRANSIENT if self.retry_unknown else ErrorClass.FATAL
            verdict = Verdict(kind)
        return verdict

    def decide(self, attempt: int, error: BaseException) -> Decision:
        """What to do after attempt number ``attempt`` (counting only the
        attempts that used the budget) failed with ``error``. No I/O; the
        jitter is random."""
        verdict = self.classify(error)
        if verdict.kind is ErrorClass.RATE_LIMITED:
            pause = verdict.retry_after
            if pause is None:
                pause = timedelta(seconds=self.rate_limit_pause)
            return Decision(Action.PAUSE, verdict.kind, pause, f"rate limited for {pause}")
        if verdict.kind is ErrorClass.FATAL:
            return Decision(Action.GIVE_UP, verdict.kind, timedelta(0), "fatal error")
        if attempt >= self.max_attempts:
            return Decision(
                Action.GIVE_UP,
                verdict.kind,
                timedelta(0),
                f"transient error, all {self.max_attempts} attempt(s) used",
            )
        delay = timedelta(seconds=self.delay(attempt))
        return Decision(
            Action.RETRY,
            verdict.kind,
            delay,
            f"transient error, attempt {attempt} of {self.max_attempts}; retrying",
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before the retry that follows attempt ``attempt``."""
        wait = wait_exponential(
            multiplier=self.initial, exp_base=self.multiplier, max=self.max_delay
        ) + wait_random(0, self.jitter)
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempt
        return float(wait(state))

    def as_dict(self) -> dict[str, Any]:
        """The policy as stored with each attempt (and shown by the API)."""
        classifier = self.classifier
        return {
            "max_attempts": self.max_attempts,
            "initial": self.initial,
            "multiplier": self.multiplier,
            "max_delay": self.max_delay,
            "jitter": self.jitter,
            "rate_limit_pause": self.rate_limit_pause,
            "retry_unknown": self.retry_unknown,
            "classifier": getattr(classifier, "__qualname__", repr(classifier))
            if classifier is not None
            else None,
        }


def _seconds(field: str, value: object, *, minimum: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum:  # type: ignore[operator]
        raise InvalidInput(field, f"got {describe(value)}", f"a number of seconds >= {minimum:g}")


# -- the default classifier ------------------------------------------------------


def default_classifier(error: BaseException) -> Verdict | None:
    """Classify runtrack's markers, network errors and HTTP statuses; look
    through explicit chaining (``raise X from Y``) for one of them."""
    for exc in _chain(error):
        verdict = _marker(exc) or _network(exc) or _http(exc)
        if verdict is not None:
            return verdict
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        yield current
        current = current.__cause__


def _marker(exc: BaseException) -> Verdict | None:
    if isinstance(exc, RateLimited):
        return Verdict(ErrorClass.RATE_LIMITED, exc.retry_after)
    if isinstance(exc, Transient):
        return Verdict(ErrorClass.TRANSIENT)
    if isinstance(exc, Fatal):
        return Verdict(ErrorClass.FATAL)
    return None


def _network(exc: BaseException) -> Verdict | None:
    if isinstance(exc, ConnectionError | TimeoutError):
        return Verdict(ErrorClass.TRANSIENT)
    requests = sys.modules.get("requests")
    if requests is not None and isinstance(
        exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError
    ):
        return Verdict(ErrorClass.TRANSIENT)
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.TransportError):
        return Verdict(ErrorClass.TRANSIENT)
    return None


def _http(exc: BaseException) -> Verdict | None:
    """HTTP errors that carry a response: 429 -> rate limited (honouring a
    ``Retry-After`` in seconds), 408 and 5xx -> transient, other 4xx -> fatal."""
    status: Any = None
    headers: Any = None
    if isinstance(exc, urllib.error.HTTPError):
        status, headers = exc.code, exc.headers
    else:
        response = _response_of(exc)
        if response is not None:
            status, headers = response.status_code, response.headers
    if not isinstance(status, int):
        return None
    if status == 429:
        return Verdict(ErrorClass.RATE_LIMITED, _retry_after(headers))
    if status == 408 or 500 <= status <= 599:
        return Verdict(ErrorClass.TRANSIENT)
    if 400 <= status <= 499:
        return Verdict(ErrorClass.FATAL)
    return None


def _response_of(exc: BaseException) -> Any:
    requests = sys.modules.get("requests")
    if requests is not None and isinstance(exc, requests.HTTPError):
        return exc.response
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.HTTPStatusError):
        return exc.response
    return None


def _retry_after(headers: Any) -> timedelta | None:
    """``Retry-After`` in seconds; an HTTP date (or junk) gives ``None`` (the
    policy's default pause), because turning a date into a delay needs a clock."""
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return timedelta(seconds=seconds)


def streak_backoff(base: timedelta, streak: int) -> timedelta:
    """How long a job with ``streak`` consecutive failed runs waits after the
    last one before its schedule resumes: ``base`` doubled per extra failure,
    at most 64 x ``base``."""
    if streak < 1:
        return timedelta(0)
    seconds = base.total_seconds()
    wait = wait_exponential(multiplier=seconds, max=seconds * 64)
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = streak
    return timedelta(seconds=float(wait(state)))


def backoff_until(failure_backoff: timedelta | None, state: JobRecord | None) -> datetime | None:
    """When a job in a failure streak may run again (``None``: no backoff)."""
    if failure_backoff is None or state is None or state.last_finished_at is None:
        return None
    if state.consecutive_failures < 1:
        return None
    return state.last_finished_at + streak_backoff(failure_backoff, state.consecutive_failures)
