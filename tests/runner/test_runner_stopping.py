"""Timeouts and graceful stops, in one process with real (short) time: the
run is asked to stop, ends cancelled with its counters, and a job that
ignores the request is cut off so the runner never hangs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from runtrack import Ledger, Run, Runner, RunStatus


def end_abandoned_jobs(release: threading.Event) -> None:
    """Let jobs that ignored their run handle end (before their ledger closes)."""
    release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("runtrack-job:"):
            thread.join(timeout=5)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    end_abandoned_jobs(event)


def counting(run: Run) -> None:
    while True:
        run.count("pages")
        time.sleep(0.02)


def test_a_run_over_its_timeout_fails(ledger: Ledger) -> None:
    # Issue 18 changed this: a timeout ends failed (it was cancelled).
    runner = Runner(ledger)
    runner.job("board:endless", provider="board", every="1h", timeout=0.3)(counting)

    started = time.monotonic()
    summary = runner.run_once()
    elapsed = time.monotonic() - started
    assert (summary.ran, summary.failed, summary.retries) == (1, 1, 0)
    assert elapsed < 2.0
    record = ledger.get_run(summary.run_ids[0])
    assert record.status is RunStatus.FAILED
    assert record.error_type == "timeout"
    assert ledger.get_job("board:endless").consecutive_failures == 1
    assert "timed out after 0:00:00.300000" in (record.error_message or "")
    assert record.counters["pages"] >= 5
    assert not ledger.active_runs()


def test_a_job_that_ignores_the_stop_is_cut_off(ledger: Ledger, release: threading.Event) -> None:
    runner = Runner(ledger)

    @runner.job("board:stuck", provider="board", every="1h", timeout=0.2)
    def stuck(run: Run) -> None:
        run.count("requests")
        release.wait(10)  # a network call without a timeout

    started = time.monotonic()
    summary = runner.run_once()
    assert time.monotonic() - started < 0.2 + 0.5 + 1.0
    record = ledger.get_run(summary.run_ids[0])
    # Issue 18: a timeout ends failed (it was cancelled), cut off or not.
    assert (record.status, record.error_type) == (RunStatus.FAILED, "timeout")
    assert record.counters == {"requests": 1}
    assert not ledger.active_runs()


def _stop_once_running(runner: Runner, started: threading.Event) -> threading.Thread:
    def stop_later() -> None:
        started.wait(10)
        time.sleep(0.1)
        runner.stop()

    thread = threading.Thread(target=stop_later)
    thread.start()
    return thread


def test_stop_gives_the_run_its_grace_then_cancels_it(ledger: Ledger) -> None:
    runner = Runner(ledger, grace=0.3)
    started = threading.Event()

    @runner.job("board:long", provider="board", every="1h")
    def long(run: Run) -> None:
        started.set()
        counting(run)

    stopper = _stop_once_running(runner, started)
    runner.run_forever(handle_signals=False)
    stopped_at = time.monotonic()
    stopper.join()
    (record,) = ledger.list_runs(job="board:long").items
    assert record.status is RunStatus.CANCELLED
    assert record.error_type == "shutdown"
    assert record.counters["pages"] >= 10
    assert record.duration is not None and record.duration.total_seconds() >= 0.3
    assert time.monotonic() - stopped_at < 0.1  # returned once the run was final
    assert not ledger.active_runs()


def test_a_run_that_ends_within_the_grace_is_not_cancelled(ledger: Ledger) -> None:
    runner = Runner(ledger, grace=5)
    started = threading.Event()

    @runner.job("board:short", provider="board", every="1h")
    async def short(run: Run) -> None:
        started.set()
        for _ in range(15):
            run.count("pages")
            time.sleep(0.02)

    stopper = _stop_once_running(runner, started)
    began = time.monotonic()
    runner.run_forever(handle_signals=False)
    stopper.join()
    assert time.monotonic() - began < 3
    (record,) = ledger.list_runs(job="board:short").items
    assert (record.status, record.counters) == (RunStatus.SUCCESS, {"pages": 15})


def _cancel_once_running(ledger: Ledger, started: threading.Event) -> threading.Thread:
    def cancel_later() -> None:
        started.wait(10)
        (run,) = ledger.active_runs()
        ledger.cancel(run.id, by="ops", reason="wrong query")

    thread = threading.Thread(target=cancel_later)
    thread.start()
    return thread


def test_an_operator_cancel_stops_the_run_and_is_not_retried(ledger: Ledger) -> None:
    runner = Runner(ledger)
    started = threading.Event()

    @runner.job("board:cancelled", provider="board", every="1h")
    def job(run: Run) -> None:
        started.set()
        counting(run)

    canceller = _cancel_once_running(ledger, started)
    summary = runner.run_once()
    canceller.join()
    assert (summary.cancelled, summary.retries) == (1, 0)
    record = ledger.get_run(summary.run_ids[0])
    assert (record.status, record.error_type, record.cancel_requested_by) == (
        RunStatus.CANCELLED,
        "cancelled",
        "ops",
    )


def test_a_job_that_ignores_a_cancel_is_cut_off_after_the_cancel_grace(
    db_url: str, release: threading.Event
) -> None:
    with Ledger(db_url, heartbeat_interval=0.05, cancel_grace=0.3) as ledger:
        runner = Runner(ledger)
        started = threading.Event()

        @runner.job("board:deaf", provider="board", every="1h")
        def deaf(run: Run) -> None:
            run.count("pages", 2)
            started.set()
            release.wait(10)

        canceller = _cancel_once_running(ledger, started)
        began = time.monotonic()
        summary = runner.run_once()
        canceller.join()
        assert time.monotonic() - began < 0.3 + 2.0
        record = ledger.get_run(summary.run_ids[0])
        assert (record.status, record.error_type) == (RunStatus.CANCELLED, "cancel_timeout")
        assert record.counters == {"pages": 2}
        assert not ledger.active_runs()
        end_abandoned_jobs(release)


async def async_counting(run: Run) -> None:
    while True:
        run.count("pages")
        await asyncio.sleep(0.02)


async def async_swallowing(run: Run) -> None:
    """Catches the stop at its await point and returns as if done."""
    try:
        await async_counting(run)
    except BaseException:  # the point: a job that swallows the stop
        return


@pytest.mark.parametrize("kind", ["counting", "swallowing", "waiting"])
def test_an_async_job_over_its_timeout_fails(
    ledger: Ledger, release: threading.Event, kind: str
) -> None:
    async def waiting(run: Run) -> None:
        run.count("pages")
        await asyncio.to_thread(release.wait, 10)  # never touches the handle: cut off

    jobs: dict[str, Callable[[Run], Awaitable[None]]] = {
        "counting": async_counting,
        "swallowing": async_swallowing,
        "waiting": waiting,
    }
    runner = Runner(ledger)
    runner.job("board:async-endless", provider="board", every="1h", timeout=0.2)(jobs[kind])
    summary = runner.run_once()
    # Issue 18 changed this: a timeout ends failed (it was cancelled).
    assert (summary.ran, summary.failed, summary.retries) == (1, 1, 0)
    record = ledger.get_run(summary.run_ids[0])
    assert (record.status, record.error_type) == (RunStatus.FAILED, "timeout")
    assert record.counters["pages"] >= 1
    assert not ledger.active_runs()
