"""A rate limit raised the way every other error is raised pauses its
provider, and the log line of a failed run names the exception."""

from __future__ import annotations

import logging

import pytest

from runtrack import Ledger, RateLimited, RetryPolicy, Run, Runner


def test_a_rate_limit_raised_with_its_message_first_pauses_the_provider(
    manual_ledger: Ledger,
) -> None:
    runner = Runner(manual_ledger, retry=RetryPolicy.never())

    @runner.job("maps:geocode", provider="maps", every="1h")
    def geocode(run: Run) -> None:
        raise RateLimited("HTTP 429 from maps API", retry_after=20)

    assert runner.run_once().retries == 1
    pause = manual_ledger.paused("maps")
    assert pause is not None and "HTTP 429 from maps API" in pause.reason


def test_the_runner_log_line_of_a_failed_run_names_the_exception(
    manual_ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    runner = Runner(manual_ledger, retry=RetryPolicy.never())

    @runner.job("maps:broken", provider="maps", every="1h")
    def broken(run: Run) -> None:
        raise KeyError("lat")

    with caplog.at_level(logging.INFO, logger="runtrack.runner"):
        runner.run_once()
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failed and "KeyError: 'lat'" in failed[0], failed


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ZeroDivisionError


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Unprintable(), "str() raised ZeroDivisionError"),
        (ValueError("x" * 10_000_000), "characters in all]"),
        (ValueError(), "ValueError: ValueError"),
    ],
    ids=["raising-str", "10-MB-message", "empty"],
)
def test_the_failure_log_line_survives_any_exception_text(
    manual_ledger: Ledger, caplog: pytest.LogCaptureFixture, error: Exception, expected: str
) -> None:
    """Issue 15 (F3): a ``__str__`` that raises printed "--- Logging error ---"
    and lost the line; a 10 MB message was logged in full."""
    runner = Runner(manual_ledger, retry=RetryPolicy.never())

    @runner.job("maps:odd", provider="maps", every="1h")
    def odd(run: Run) -> None:
        raise error

    with caplog.at_level(logging.INFO, logger="runtrack.runner"):
        runner.run_once()
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failed and expected in failed[0], failed
    assert len(failed[0]) < 2_000
