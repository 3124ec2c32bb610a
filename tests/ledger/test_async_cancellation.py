"""Guarantees 1 and 3 in async code: a task cancelled at any await of
``async with ledger.run()`` or of a tracked coroutine (``task.cancel()``,
``asyncio.wait_for``) leaves no active run behind. The start and the
finalization run in worker threads that a cancel does not stop: a start whose
caller is gone is finalized cancelled, and a finalization already begun
always completes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from runtrack import Ledger, RunStatus
from runtrack.models import TERMINAL, RunRecord

INTERVAL = 0.05


class HoldStarts:
    """A listener that holds every start in its worker thread, after the run
    is inserted, until released: the window in which a caller may go away."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def run_started(self, run: RunRecord) -> None:
        self.entered.set()
        self.release.wait(10)

    def run_finished(self, run: RunRecord) -> None:
        pass

    def close(self) -> None:
        self.release.set()


@pytest.fixture
def hold() -> HoldStarts:
    return HoldStarts()


@pytest.fixture
def held(db_url: str, hold: HoldStarts) -> Iterator[Ledger]:
    with Ledger(db_url, heartbeat_interval=INTERVAL, listeners=[hold]) as opened:
        yield opened


def assert_no_active_run(ledger: Ledger, job: str) -> list[RunRecord]:
    """Every run of ``job`` is terminal, and the job can start again at once."""
    runs = ledger.list_runs(job=job).items
    assert [r.status for r in runs if r.status not in TERMINAL] == []
    assert not ledger.active_runs()
    with ledger.run(job):
        pass
    return runs


async def wait_for_event(event: threading.Event) -> None:
    deadline = time.monotonic() + 10
    while not event.is_set():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)


def test_a_task_cancelled_while_its_run_starts_leaves_no_active_run(
    held: Ledger, hold: HoldStarts
) -> None:
    """The issue's case: the start completes in its thread after the task is
    gone, and the thread finalizes the run (before: running for the life of
    the process, kept alive by its heartbeat)."""
    entered = []

    async def body() -> None:
        async with held.run("async:starting"):
            entered.append(True)

    async def main() -> None:
        task = asyncio.create_task(body())
        await wait_for_event(hold.entered)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hold.release.set()  # the start completes after its caller left

    asyncio.run(main())  # returns once the worker threads are done
    assert entered == []
    first = assert_no_active_run(held, "async:starting")[-1]
    assert first.status is RunStatus.CANCELLED


def test_a_task_cancelled_just_after_its_run_started_leaves_no_active_run(
    held: Ledger, hold: HoldStarts
) -> None:
    """The thread had handed the run over, but the task never resumed to
    enter the block: the cancelled caller finalizes it."""

    async def body() -> None:
        async with held.run("async:handed-over"):
            pytest.fail("the block must not be entered")

    async def main() -> None:
        task = asyncio.create_task(body())
        await wait_for_event(hold.entered)
        hold.release.set()
        time.sleep(0.2)  # the loop is busy: the thread finishes, the task cannot resume
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    first = assert_no_active_run(held, "async:handed-over")[-1]
    assert first.status is RunStatus.CANCELLED


def test_wait_for_timing_out_a_start_leaves_no_active_run(held: Ledger, hold: HoldStarts) -> None:
    async def body() -> None:
        async with held.run("async:wait-for"):
            await asyncio.sleep(10)

    async def main() -> None:
        # The start is held until released below, so the timeout always
        # fires while it waits in its worker thread; 1 s (not 0.05) lets a
        # loaded machine get the thread there first.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(body(), timeout=1.0)
        assert hold.entered.is_set()
        hold.release.set()

    asyncio.run(main())
    assert_no_active_run(held, "async:wait-for")


def test_a_tracked_coroutine_cancelled_while_starting_leaves_no_active_run(
    held: Ledger, hold: HoldStarts
) -> None:
    @held.tracked("async:tracked")
    async def job() -> None:
        pytest.fail("the function must not run")

    async def main() -> None:
        task = asyncio.create_task(job())
        await wait_for_event(hold.entered)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hold.release.set()

    asyncio.run(main())
    assert_no_active_run(held, "async:tracked")


def test_a_task_cancelled_while_its_run_finalizes_still_finalizes_it(ledger: Ledger) -> None:
    """The finalization waits for a free worker thread when it is cancelled
    (before: the queued finalization was cancelled with the task, and the run
    stayed running)."""
    gate = threading.Event()
    ids: list[int] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        async with ledger.run("async:exit") as run:
            ids.append(run.id)
            run.count("pages", 2)
            loop.run_in_executor(None, gate.wait)  # takes the only worker thread

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
        task = asyncio.create_task(body())
        while not ids:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)  # the task now waits in __aexit__
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()

    asyncio.run(main())
    record = ledger.get_run(ids[0])
    assert (record.status, record.counters) == (RunStatus.SUCCESS, {"pages": 2})
    assert_no_active_run(ledger, "async:exit")


def test_cancels_and_timeouts_at_any_point_leave_no_active_run(ledger: Ledger) -> None:
    """Cancelled after 0, 1, 2, ... loop iterations, and timed out after
    growing delays: wherever the cancel lands, nothing stays active."""

    async def body(job: str) -> None:
        async with ledger.run(job) as run:
            for _ in range(50):
                run.count("pages")
                await asyncio.sleep(0.001)

    async def main() -> None:
        for spins in range(12):
            task = asyncio.create_task(body(f"async:spin-{spins}"))
            for _ in range(spins):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for step in range(12):
            await asyncio.gather(
                asyncio.wait_for(body(f"async:timeout-{step}"), timeout=step * 0.004),
                return_exceptions=True,
            )

    asyncio.run(main())
    for name in [f"async:spin-{i}" for i in range(12)] + [f"async:timeout-{i}" for i in range(12)]:
        assert_no_active_run(ledger, name)
