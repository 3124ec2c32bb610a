"""Bad input at registration, not at 3 a.m.: every mistake raises a clear
SchedulingError (an InvalidInput) that names the job, the field, what was
wrong and what is allowed, when the job is registered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runtrack import InvalidInput, Ledger, RetryPolicy, Run, Runner, SchedulingError


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    # Registration touches no table; one SQLite file is enough here.
    with Ledger(f"sqlite:///{tmp_path}/r.db", heartbeat_interval=0.05) as ledger:
        yield Runner(ledger)


def job(run: Run) -> None:
    pass


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ({"every": "fortnightly"}, "every", "'fortnightly' is not a positive duration"),
        ({"every": "15 minutes"}, "every", "is not a positive duration"),
        ({"every": "0s"}, "every", "is not a positive duration"),
        ({"every": timedelta(seconds=-5)}, "every", "is not a positive duration"),
        ({"every": -1}, "every", "is not a positive duration"),
        ({"cron": "every day at 9"}, "cron", "is not a valid cron expression"),
        ({"cron": "61 * * * *"}, "cron", "is not a valid cron expression"),
        ({"every": "1h", "cron": "0 * * * *"}, "every/cron", "both were given"),
        ({}, "every/cron", "neither was given"),
        ({"every": "1h", "timeout": "-3s"}, "timeout", "a positive duration"),
        ({"every": "1h", "concurrency": 0}, "concurrency", "got 0"),
        ({"every": "1h", "failure_backoff": "soon"}, "failure_backoff", "'soon'"),
        ({"every": "1h", "retry": 3}, "retry", "RetryPolicy"),
        ({"every": "1h", "catchup": -1}, "catchup", "got -1"),
        ({"every": "1h", "on_partial": "retry"}, "on_partial", "'retry'"),
        ({"every": "1h", "max_carry_attempts": 0}, "max_carry_attempts", "got 0"),
    ],
)
def test_bad_schedule_options(
    runner: Runner, options: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(SchedulingError) as caught:
        runner.job("shop:search", provider="shop", **options)(job)
    error = caught.value
    assert isinstance(error, InvalidInput)
    assert error.job == "shop:search"
    assert error.field == field
    assert str(error).startswith("job 'shop:search': ")
    assert words in str(error)
    assert "allowed:" in str(error)
    assert runner.jobs == []


def test_a_job_registered_twice(runner: Runner) -> None:
    runner.job("shop:search", provider="shop", every="1h")(job)
    with pytest.raises(SchedulingError, match="already registered") as caught:
        runner.job("shop:search", provider="shop", cron="0 * * * *")(job)
    assert caught.value.field == "key"
    assert [spec.key for spec in runner.jobs] == ["shop:search"]


def test_a_function_that_cannot_take_the_run(runner: Runner) -> None:
    def two(run: Run, other: int) -> None: ...

    def none() -> None: ...

    for fn in (two, none, "not callable"):
        with pytest.raises(SchedulingError, match="function") as caught:
            runner.job("shop:x", provider="shop", every="1h")(fn)  # type: ignore[type-var]
        assert caught.value.field == "function"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"provider": ""}, "provider"),
        ({"provider": None}, "provider"),
    ],
)
def test_bad_job_key_or_provider(runner: Runner, options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        runner.job("k", every="1h", **options)(job)
    assert caught.value.field == field
    with pytest.raises(InvalidInput) as caught:
        runner.job("", provider="p", every="1h")(job)
    assert caught.value.field == "job"


def test_good_registrations_keep_the_function(runner: Runner) -> None:
    decorated = runner.job("a", provider="p", every="15m")(job)
    runner.job("b", provider="p", every=timedelta(hours=1), timeout=30)(job)
    runner.job("c", provider="p", cron="*/15 * * * *", concurrency=2)(job)

    async def coroutine_job(run: Run) -> None: ...

    runner.job("d", provider="p", cron="@hourly", retry=RetryPolicy.never())(coroutine_job)
    assert decorated is job
    specs = {spec.key: spec for spec in runner.jobs}
    assert specs["a"].schedule.describe() == "every 15m"
    assert specs["b"].timeout == timedelta(seconds=30)
    assert specs["c"].concurrency == 2
    assert specs["d"].is_async and specs["d"].retry.max_attempts == 1
    assert specs["a"].retry == runner.default_retry


def test_bad_runner_options(tmp_path: Path) -> None:
    with Ledger(f"sqlite:///{tmp_path}/r.db", heartbeat_interval=0.05) as ledger:
        for options, field in (
            ({"grace": -1}, "grace"),
            ({"reap_every": "often"}, "reap_every"),
            ({"prune_older_than": 0}, "prune_older_than"),
            ({"worker_id": ""}, "worker_id"),
            ({"jitter": -5}, "jitter"),  # issue 15 (F14): as RetryPolicy refuses it
            ({"jitter": float("nan")}, "jitter"),
        ):
            with pytest.raises(InvalidInput) as caught:
                Runner(ledger, **options)
            assert caught.value.field == field
