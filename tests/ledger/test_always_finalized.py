"""Guarantee 1: leaving the run block by any path finalizes the run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from runtrack import InvalidInput, InvalidTransition, Ledger, RunStatus, current_run
from runtrack.failures import MAX_MESSAGE, MAX_STACK


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


# -- exceptions and values that resist being described ------------------------


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ZeroDivisionError


class Unrepresentable(Exception):
    def __str__(self) -> str:
        raise ZeroDivisionError

    def __repr__(self) -> str:
        raise ZeroDivisionError


class Opaque:
    """An argument whose text cannot be had."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BadNotes(Exception):
    @property
    def __notes__(self) -> list[str]:  # type: ignore[override]
        raise RuntimeError("no notes")


Odd = type("Odd", (Exception,), {"__module__": object()})
Odd.__qualname__ = "Odd\x00" + "N" * 300  # NUL, and longer than the column

HUGE = "x" * 10_000_000


@pytest.mark.parametrize(
    ("make", "type_part"),
    [
        (lambda: Unprintable("secret"), "Unprintable"),
        (lambda: Unrepresentable(), "Unrepresentable"),
        (lambda: ValueError(Opaque()), "ValueError"),
        (lambda: ValueError(Opaque(), 2), "ValueError"),
        (lambda: BadNotes("notes"), "BadNotes"),
        (lambda: Odd("nul \x00 and \udc80 surrogate"), "Odd"),
        (lambda: Boom(HUGE), "Boom"),
        (lambda: Boom("\x00" * 3_000_000 + "\U0001f600" * 3_000_000), "Boom"),
    ],
    ids=["str", "str-and-repr", "arg", "args", "notes", "odd-name", "10MB", "nul-and-4-byte"],
)
def test_an_exception_that_resists_description_still_fails_the_run(
    ledger: Ledger, make: Callable[[], BaseException], type_part: str
) -> None:
    error = make()
    with pytest.raises(type(error)) as caught, ledger.run("jobs:odd-error") as run:
        run.count("pages")
        raise error
    assert caught.value is error  # re-raised unchanged
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.FAILED
    assert type_part in (record.error_type or "")
    assert record.counters == {"pages": 1}
    assert len(record.error_message or "") <= MAX_MESSAGE
    assert 0 < len(record.error_stack or "") <= MAX_STACK
    with ledger.run("jobs:odd-error"):  # the job is free at once, not when reaped
        pass


def test_a_huge_message_keeps_its_start_and_the_stack_its_end(ledger: Ledger) -> None:
    with pytest.raises(Boom), ledger.run("jobs:huge-error") as run:
        raise Boom("start-" + HUGE + "-end")
    record = ledger.get_run(run.id)
    assert record.error_message is not None and record.error_message.startswith("start-xxx")
    assert "10000010 characters in all" in record.error_message
    assert record.error_stack is not None and "raise Boom" in record.error_stack


def test_values_changed_after_they_were_given_are_stored_as_given(ledger: Ledger) -> None:
    """The run stores what each call was given, even if the caller later turns
    its objects into ones no database takes (before: the finalization failed
    and the run stayed running until reaped)."""
    details: dict[str, Any] = {"page": 1}
    data: dict[str, Any] = {"price": 1.5}
    cursor: dict[str, Any] = {"page": 1}
    with ledger.run("jobs:mutated") as run:
        run.error("page 2 failed", context=details)
        run.item("offer-1", "success", data=data)
        run.save_checkpoint(cursor)
        for value in (details, data, cursor):
            value["later"] = object()
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.PARTIAL
    assert record.error_details == {
        "errors": [{"message": "page 2 failed", "context": {"page": 1}}],
        "error_count": 1,
    }
    assert [item.data for item in ledger.list_items(run.id).items] == [{"price": 1.5}]
    job = ledger.get_job("jobs:mutated")
    assert job is not None and job.checkpoint == {"page": 1}


def test_an_unstorable_checkpoint_or_counter_is_refused_in_the_block(ledger: Ledger) -> None:
    """Caught where it is given, so the run still ends as its code decides
    (before: accepted, then the finalization failed and the run stayed running)."""
    with ledger.run("jobs:unstorable") as run:
        with pytest.raises(InvalidInput):
            run.checkpoint = {"cursor": object()}
        with pytest.raises(InvalidInput):
            run.count("records", 10**5000)  # no JSON number Python writes
        run.count("records", 2)
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.SUCCESS
    assert record.counters == {"records": 2}


def test_a_handle_whose_fields_were_replaced_still_ends_failed(ledger: Ledger) -> None:
    with ledger.run("jobs:clobbered") as run:
        run.count("pages", 3)
        run._started_at = "yesterday"  # type: ignore[assignment]  # its state broken
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.FAILED
    assert record.error_type == "finalize_error"
    assert record.counters == {"pages": 3}
    with ledger.run("jobs:clobbered"):
        pass


def test_bad_input_whose_repr_raises_is_still_reported_as_bad_input(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput, match="job"):
        ledger.run(Opaque())  # type: ignore[arg-type]
    with ledger.run("jobs:opaque-input") as run, pytest.raises(InvalidInput, match="counter"):
        run.count(Opaque())  # type: ignore[arg-type]


class ExitingStr(Exception):
    def __str__(self) -> str:
        raise SystemExit(3)


def test_an_exception_whose_str_raises_system_exit_still_fails_the_run(ledger: Ledger) -> None:
    """Issue 15 (F2): a ``__str__`` raising a BaseException (SystemExit, a
    Ctrl-C during a slow one) left the run running until reaped. The run
    ends failed, then that exception goes on."""
    with pytest.raises(SystemExit), ledger.run("jobs:exiting-str") as run:
        raise ExitingStr
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.FAILED
    assert record.error_type is not None and record.error_type.endswith("ExitingStr")
    assert record.error_message == "<ExitingStr: describing it raised SystemExit>"
    with ledger.run("jobs:exiting-str"):  # its job is free
        pass


class InterruptingListener:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def run_started(self, run: object) -> None:
        raise self.error

    def run_finished(self, run: object) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (KeyboardInterrupt(), RunStatus.CANCELLED, "shutdown"),
        (SystemExit(2), RunStatus.CANCELLED, "shutdown"),
        (GeneratorExit(), RunStatus.FAILED, "GeneratorExit"),
    ],
)
def test_a_start_interrupted_after_its_insert_ends_the_run(
    db_url: str, error: BaseException, status: RunStatus, error_type: str
) -> None:
    """Issue 15 (F6): a Ctrl-C (or a listener's BaseException) between the
    insert and the block left the run running and heartbeated for the rest
    of the process: no reap could end it."""
    listener = InterruptingListener(error)
    with Ledger(db_url, heartbeat_interval=0.05, listeners=[listener]) as ledger:
        with pytest.raises(type(error)), ledger.run("jobs:interrupted-start"):
            pytest.fail("the block must not run")
        (record,) = ledger.list_runs(job="jobs:interrupted-start").items
        assert (record.status, record.error_type) == (status, error_type)
        assert ledger.active_runs() == []
    with Ledger(db_url) as ledger, ledger.run("jobs:interrupted-start"):
        pass  # its job is free


def test_tracked_refuses_a_generator_and_waits_for_an_awaitable(ledger: Ledger) -> None:
    """Issue 15 (F7): a tracked generator function, an object whose
    ``__call__`` is ``async def``, or a function returning a coroutine ended
    the run ``success`` before the body ran."""

    def pages() -> Any:
        yield 1

    async def async_pages() -> Any:
        yield 1

    for generator in (pages, async_pages):
        with pytest.raises(InvalidInput, match="generator function"):
            ledger.tracked("jobs:tracked-generator")(generator)

    class Fetch:
        async def __call__(self) -> int:
            await asyncio.sleep(0)
            current_run().count("fetched")
            return 7

    fetch = ledger.tracked("jobs:tracked-async-call")(Fetch())
    assert asyncio.run(fetch()) == 7  # type: ignore[arg-type]
    (record,) = ledger.list_runs(job="jobs:tracked-async-call").items
    assert (record.status, record.counters) == (RunStatus.SUCCESS, {"fetched": 1})

    async def body() -> None:
        current_run().count("never")

    @ledger.tracked("jobs:tracked-returns-coroutine")
    def start_body() -> Any:
        return body()

    with pytest.raises(InvalidInput, match="returned an awaitable"):
        start_body()
    (record,) = ledger.list_runs(job="jobs:tracked-returns-coroutine").items
    assert record.status is RunStatus.FAILED and "async def" in (record.error_message or "")
