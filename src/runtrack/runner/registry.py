"""Job registration: every check runs when the job is registered, so a bad
schedule or a misspelt option fails at deploy time, not at 3 a.m."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from runtrack import inputs
from runtrack.errors import InvalidInput, SchedulingError, describe
from runtrack.models import DEFAULT_MAX_CARRY_ATTEMPTS, OnPartial
from runtrack.run import Run
from runtrack.runner.retry import RetryPolicy
from runtrack.runner.schedule import Cron, Every, parse_schedule

__all__ = ["JobFunction", "JobSpec", "Registry"]

#: A job: called with the run handle; may be ``async def``.
JobFunction = Callable[[Run], Any] | Callable[[Run], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A registered job."""

    key: str
    fn: JobFunction
    provider: str
    schedule: Every | Cron
    retry: RetryPolicy
    timeout: timedelta | None
    concurrency: int
    failure_backoff: timedelta | None
    catchup: int = 1
    on_partial: OnPartial = OnPartial.CARRY
    max_carry_attempts: int = DEFAULT_MAX_CARRY_ATTEMPTS

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


class Registry:
    """The jobs of one runner, by key."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobSpec] = {}

    def add(self, spec: JobSpec) -> None:
        if spec.key in self._jobs:
            raise SchedulingError(
                spec.key,
                "key",
                f"is already registered (to {_name(self._jobs[spec.key].fn)})",
                "each job key once per runner",
            )
        self._jobs[spec.key] = spec

    def __getitem__(self, key: str) -> JobSpec:
        return self._jobs[key]

    def __iter__(self) -> Iterator[JobSpec]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def keys(self) -> list[str]:
        return list(self._jobs)


def make_spec(
    key: str,
    fn: object,
    *,
    provider: str,
    every: timedelta | float | str | None,
    cron: str | None,
    retry: RetryPolicy | None,
    default_retry: RetryPolicy,
    timeout: timedelta | float | str | None,
    concurrency: int,
    failure_backoff: timedelta | float | str | None,
    catchup: int = 1,
    on_partial: object = OnPartial.CARRY,
    max_carry_attempts: object = DEFAULT_MAX_CARRY_ATTEMPTS,
    tz: object = None,
) -> JobSpec:
    """Validate one registration."""
    inputs.key("job", key)
    inputs.key("provider", provider)
    _check_function(key, fn)
    schedule = parse_schedule(key, every, cron, tz)
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise SchedulingError(key, "retry", f"got {describe(retry)}", "a RetryPolicy or None")
    return JobSpec(
        key=key,
        fn=fn,  # type: ignore[arg-type]  # checked by _check_function
        provider=provider,
        schedule=schedule,
        retry=retry or default_retry,
        timeout=_duration(key, "timeout", timeout),
        concurrency=_concurrency(key, concurrency),
        failure_backoff=_duration(key, "failure_backoff", failure_backoff),
        catchup=_count(key, "catchup", catchup, limit=100),
        on_partial=_policy(key, on_partial),
        max_carry_attempts=_count(key, "max_carry_attempts", max_carry_attempts, limit=1000, low=1),
    )


def _check_function(key: str, fn: object) -> None:
    if not callable(fn):
        raise SchedulingError(key, "function", f"got {describe(fn)}", "a function taking the run")
    try:
        inspect.signature(fn).bind(object())
    except TypeError:
        raise SchedulingError(
            key,
            "function",
            f"{_name(fn)} cannot be called with one argument",
            "a function whose only required parameter is the run handle: def job(run): ...",
        ) from None
    except ValueError:  # no signature (some builtins): trust the caller
        pass


def _duration(key: str, field: str, value: object) -> timedelta | None:
    if value is None:
        return None
    try:
        return inputs.duration(field, value)
    except InvalidInput as bad:
        raise SchedulingError(key, field, bad.problem, bad.allowed) from None


def _concurrency(key: str, value: object) -> int:
    try:
        return inputs.positive_int("concurrency", value, limit=1000)
    except InvalidInput as bad:
        raise SchedulingError(key, "concurrency", bad.problem, bad.allowed) from None


def _count(key: str, field: str, value: object, *, limit: int, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= limit:
        raise SchedulingError(key, field, f"got {describe(value)}", f"an int from {low} to {limit}")
    return value


def _policy(key: str, value: object) -> OnPartial:
    try:
        return inputs.choice("on_partial", value, OnPartial)
    except InvalidInput as bad:
        raise SchedulingError(key, "on_partial", bad.problem, bad.allowed) from None


def _name(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or repr(fn))
