"""Guarantee 1: leaving the run block by any path finalizes the run."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runtrack import InvalidTransition, Ledger, RunStatus, current_run


class Boom(Exception):
    pass


def test_one_row_per_execution_and_finished_at_set(ledger: Ledger) -> None:
    for _ in range(3):
        with ledger.run("jobs:one", provider="p") as run:
            run.count("pages")
    runs = ledger.list_runs(job="jobs:one").items
    assert len(runs) == 3
    assert all(r.status is RunStatus.SUCCESS and r.finished_at is not None for r in runs)
    assert all(r.duration is not None and r.duration.total_seconds() >= 0 for r in runs)


def test_exception_marks_failed_and_reraises_same_object(ledger: Ledger) -> None:
    error = Boom("provider answered 500")
    with pytest.raises(Boom) as caught, ledger.run("jobs:fail") as run:
        run.count("pages", 2)
        raise error
    assert caught.value is error
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.FAILED
    assert record.error_type.endswith("Boom")
    assert record.error_message == "provider answered 500"
    assert "raise error" in record.error_stack
    assert record.counters == {"pages": 2}
    assert record.finished_at is not None


def test_error_makes_partial(ledger: Ledger) -> None:
    with ledger.run("jobs:partial") as run:
        run.count("offers", 10)
        run.error("offer 7 had no title", offer_id=7)
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.PARTIAL
    assert record.error_details == {
        "errors": [{"message": "offer 7 had no title", "offer_id": 7}],
        "error_count": 1,
    }


def test_keyboard_interrupt_cancels_and_propagates(ledger: Ledger) -> None:
    with pytest.raises(KeyboardInterrupt), ledger.run("jobs:ctrl-c") as run:
        raise KeyboardInterrupt
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.CANCELLED
    assert record.error_type == "shutdown"


def test_async_block_behaves_like_sync(ledger: Ledger) -> None:
    async def job() -> tuple[int, int]:
        async with ledger.run("jobs:async") as ok:
            ok.count("fetched", 5)
            assert current_run() is ok
        with pytest.raises(Boom):
            async with ledger.run("jobs:async") as bad:
                await asyncio.sleep(0)
                raise Boom("async failure")
        return ok.id, bad.id

    ok_id, bad_id = asyncio.run(job())
    assert ledger.get_run(ok_id).status is RunStatus.SUCCESS
    assert ledger.get_run(ok_id).counters == {"fetched": 5}
    failed = ledger.get_run(bad_id)
    assert failed.status is RunStatus.FAILED
    assert failed.error_message == "async failure"


def test_tracked_sync_and_async(ledger: Ledger) -> None:
    @ledger.tracked("jobs:tracked-sync", provider="p")
    def sync_job(pages: int, run: object = None) -> int:
        current_run().count("pages", pages)
        return pages * 2

    @ledger.tracked("jobs:tracked-async")
    async def async_job() -> str:
        current_run().count("items")
        return "done"

    assert sync_job(3) == 6
    assert asyncio.run(async_job()) == "done"
    sync_run = ledger.list_runs(job="jobs:tracked-sync").items[0]
    async_run = ledger.list_runs(job="jobs:tracked-async").items[0]
    assert sync_run.counters == {"pages": 3} and sync_run.provider == "p"
    assert async_run.counters == {"items": 1}
    assert async_run.status is RunStatus.SUCCESS


def test_terminal_run_cannot_change(ledger: Ledger) -> None:
    with ledger.run("jobs:done") as run:
        pass
    with pytest.raises(InvalidTransition) as caught:
        ledger.finish_run(run.id, "failed")
    assert caught.value.current == "success"
    assert caught.value.attempted == "failed"
    assert ledger.get_run(run.id).status is RunStatus.SUCCESS


def _race_finishers(ledger: Ledger, run_id: int) -> list[str]:
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def finish(status: str) -> None:
        barrier.wait()
        try:
            ledger.finish_run(run_id, status)
            outcomes.append(status)
        except InvalidTransition:
            outcomes.append("lost")

    threads = [threading.Thread(target=finish, args=(s,)) for s in ("failed", "cancelled")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_threads_finishing_one_run_have_one_winner(ledger: Ledger) -> None:
    for _ in range(10):
        record = ledger.create_run("jobs:race")
        outcomes = _race_finishers(ledger, record.id)
        assert outcomes.count("lost") == 1
        winner = next(o for o in outcomes if o != "lost")
        assert ledger.get_run(record.id).status == winner


def test_start_and_finish_without_a_block(ledger: Ledger) -> None:
    pending = ledger.create_run("jobs:manual", triggered_by="user:42")
    assert pending.status is RunStatus.PENDING and pending.started_at is None
    run = ledger.start_run(run_id=pending.id)
    run.count("rows", 7)
    final = ledger.finish_run(run, "success", counters={"pages": 2})
    assert final.status is RunStatus.SUCCESS
    assert final.counters == {"rows": 7, "pages": 2}
    assert final.triggered_by == "user:42"
    other = ledger.start_run("jobs:manual-2")
    assert ledger.finish_run(other.id, "failed", error="gave up").error_message == "gave up"
