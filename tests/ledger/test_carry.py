"""Guarantee 5 for partial runs: what failed is carried to the next runs.

Items that ended ``error`` and slices reported with ``run.failed_slice`` are
owed by the job until a later run resolves them, or until they are given up
after ``max_carry_attempts`` runs failed them (kept, never handed out again).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import FrozenInstanceError, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from runtrack import (
    CarriedItem,
    CarriedNotFound,
    CarryState,
    InvalidInput,
    JobNotFound,
    Ledger,
    ManualClock,
    Run,
    Runner,
    RunStatus,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Boom(Exception):
    pass


@pytest.fixture
def manual(db_url: str) -> Iterator[tuple[Ledger, ManualClock]]:
    clock = ManualClock(T0)
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as opened:
        yield opened, clock


def step(clock: ManualClock) -> None:
    clock.advance(timedelta(minutes=1))


def owed_keys(run: Run) -> list[str]:
    return [item.key for item in run.carried.items]


def test_seven_fail_five_resolve_two_carried_until_given_up(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    keys = [f"offer-{n}" for n in range(7)]
    with ledger.run("carry:items") as first:
        assert not first.carried
        for key in keys:
            first.item(key, "error", group="g", source="s", data={"n": key}, error="HTTP 500")
    assert ledger.get_run(first.id).status is RunStatus.PARTIAL
    assert ledger.watermark("carry:items") == first.window.end  # carry moves on
    step(clock)

    with ledger.run("carry:items") as second:
        handed = second.carried.items
        assert [i.key for i in handed] == keys  # oldest first
        assert {(i.first_run, i.attempts, i.last_error) for i in handed} == {
            (first.id, 1, "HTTP 500")
        }
        assert (handed[0].group, handed[0].source, handed[0].data) == ("g", "s", {"n": keys[0]})
        for item in handed[:4]:
            second.item(item.key, "success", group="g", source="s")
        second.item(handed[4].key, "not_found", group="g", source="s")
        second.item(handed[5].key, "error", group="g", source="s", error="HTTP 503")
        # handed[6] is not tried at all: it still counts an attempt
    assert ledger.get_run(second.id).status is RunStatus.PARTIAL
    step(clock)

    for attempt in (3, 4, 5):
        with ledger.run("carry:items") as later:
            left = later.carried.items
            assert [i.key for i in left] == keys[5:]
            assert {i.attempts for i in left} == {attempt - 1}
            if attempt == 3:
                assert left[0].last_error == "HTTP 503"
                assert left[0].last_run == second.id
            for item in left:
                later.item(item.key, "error", group="g", source="s", error=f"try {attempt}")
        step(clock)

    with ledger.run("carry:items") as after:
        assert not after.carried  # given up: never handed out again
    given_up = ledger.carried("carry:items").items
    assert [(i.key, i.state, i.attempts) for i in given_up] == [
        (keys[5], CarryState.GIVEN_UP, 5),
        (keys[6], CarryState.GIVEN_UP, 5),
    ]
    assert given_up[0].last_error == "try 5"


def test_a_later_success_resolves_even_when_the_run_never_asked(
    manual: tuple[Ledger, ManualClock],
) -> None:
    """A job that looks up every product each run resolves what it owes by
    succeeding, whether or not its code reads ``run.carried``."""
    ledger, clock = manual
    with ledger.run("carry:prices") as first:
        first.item("sku-1", "error", source="amazon")
        first.item("sku-1", "success", source="ebay")  # another item: another source
        first.item("sku-2", "error", error="timeout")
        first.item("sku-2", "success")  # retried within the run: nothing owed
    owed = ledger.carried("carry:prices").items
    assert [(i.key, i.source) for i in owed] == [("sku-1", "amazon")]
    step(clock)
    with ledger.run("carry:prices") as second:
        second.item("SKU-1", "success", source="amazon")  # not the same key
        second.item("sku-1", "success", source="fnac")  # not the same source
    # Offered to the second run, which did not resolve it: one attempt more.
    assert [i.attempts for i in ledger.carried("carry:prices").items] == [2]
    step(clock)
    with ledger.run("carry:prices") as third:
        third.item("sku-1", "success", source="amazon")
    assert not ledger.carried("carry:prices")
    assert ledger.get_run(third.id).status is RunStatus.SUCCESS


def test_slices_are_resolved_by_a_run_that_does_not_report_them_again(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    page3 = (T0 - timedelta(hours=3), T0 - timedelta(hours=2))
    page5 = (T0 - timedelta(hours=1), T0 - timedelta(minutes=30))
    with ledger.run("carry:slices") as first:
        first.failed_slice(*page3, "HTTP 502")
        first.failed_slice(*page5, "HTTP 502")
    record = ledger.get_run(first.id)
    assert record.status is RunStatus.PARTIAL
    assert record.error_details is not None
    assert record.error_details["failed_slice_count"] == 2
    assert ledger.watermark("carry:slices") == first.window.end
    step(clock)

    with ledger.run("carry:slices") as second:
        slices = second.carried.slices
        assert [(s.start, s.end, s.reason, s.attempts) for s in slices] == [
            (*page3, "HTTP 502", 1),
            (*page5, "HTTP 502", 1),
        ]
        second.failed_slice(*page5, "HTTP 504")  # page 5 failed again; page 3 fetched
    step(clock)

    with ledger.run("carry:slices") as third:
        again = third.carried.slices
        assert [(s.start, s.end, s.reason, s.attempts) for s in again] == [(*page5, "HTTP 504", 2)]
    assert not ledger.carried("carry:slices")  # handed and not reported: fetched


def test_a_failed_run_resolves_nothing_and_counts_no_attempt(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    with ledger.run("carry:fail") as first:
        first.item("a", "error")
        first.failed_slice(T0 - timedelta(hours=2), T0 - timedelta(hours=1), "502")
    step(clock)
    with pytest.raises(Boom), ledger.run("carry:fail") as failing:
        assert len(failing.carried) == 2
        failing.item("a", "success")
        failing.item("b", "error", error="before the crash")
        raise Boom("provider down")
    step(clock)
    with ledger.run("carry:fail") as after:
        items, slices = after.carried.items, after.carried.slices
        # "a" and the slice are still owed, untouched; "b" was recorded before the failure
        assert [(i.key, i.attempts, i.first_run) for i in items] == [
            ("a", 1, first.id),
            ("b", 1, failing.id),
        ]
        assert [s.attempts for s in slices] == [1]


def test_hold_keeps_the_watermark_and_advance_forgets(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    with ledger.run("carry:hold", on_partial="hold") as held:
        held.item("x", "error")
        held.failed_slice(T0 - timedelta(hours=1), T0, "502")
    assert ledger.get_run(held.id).status is RunStatus.PARTIAL
    assert ledger.get_run(held.id).on_partial == "hold"
    assert ledger.watermark("carry:hold") is None  # stays where it was
    assert not ledger.carried("carry:hold")
    step(clock)
    with ledger.run("carry:hold", on_partial="hold") as clean:
        assert clean.window.start is None  # the held window is covered again
    assert ledger.watermark("carry:hold") == clean.window.end

    with ledger.run("carry:advance", on_partial="advance") as advanced:
        advanced.item("x", "error")
        advanced.failed_slice(T0 - timedelta(hours=1), T0, "502")
    assert ledger.watermark("carry:advance") == advanced.window.end
    assert not ledger.carried("carry:advance")


def test_a_queued_run_keeps_its_policy(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, _ = manual
    queued = ledger.create_run("carry:queued", on_partial="hold", max_carry_attempts=2)
    assert (queued.on_partial, queued.max_carry_attempts) == ("hold", 2)
    run = ledger.start_run(run_id=queued.id)
    run.item("x", "error")
    ledger.finish_run(run, "partial")
    assert ledger.watermark("carry:queued") is None
    assert not ledger.carried("carry:queued")


def test_max_carry_attempts_and_forget(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, clock = manual
    with ledger.run("carry:forget", max_carry_attempts=2) as first:
        first.item("a", "error")
        first.item("b", "error")
    step(clock)
    with ledger.run("carry:forget", max_carry_attempts=2) as second:
        assert owed_keys(second) == ["a", "b"]
    entries = ledger.carried("carry:forget").items
    assert {i.state for i in entries} == {CarryState.GIVEN_UP}
    ledger.forget_carried("carry:forget", entries[0].id, by="ops")
    assert [i.key for i in ledger.carried("carry:forget").items] == ["b"]
    with pytest.raises(CarriedNotFound):
        ledger.forget_carried("carry:forget", entries[0].id)
    with pytest.raises(CarriedNotFound):  # another job's entry is not this job's
        ledger.forget_carried("carry:other", entries[1].id)
    with pytest.raises(JobNotFound):
        ledger.carried("carry:nobody")


def test_pruning_keeps_the_runs_that_owed_entries_came_from(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    with ledger.run("carry:prune") as owing:
        owing.item("lost-page", "error")
    for _ in range(3):
        step(clock)
        with ledger.run("carry:prune") as run:
            run.item("other", "success")
    clock.advance(timedelta(days=100))
    assert ledger.prune("90d").runs == 2  # the middle ones; not the latest, not the owing one
    assert ledger.get_run(owing.id).status is RunStatus.PARTIAL
    assert [i.key for i in ledger.carried("carry:prune").items] == ["lost-page"]
    assert ledger.list_items(owing.id).items[0].key == "lost-page"


def test_bad_carry_options_are_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput, match="on_partial"):
        ledger.run("carry:bad", on_partial="retry")
    with pytest.raises(InvalidInput, match="max_carry_attempts"):
        ledger.run("carry:bad", max_carry_attempts=0)
    with ledger.run("carry:bad") as run:
        now = ledger.now()
        with pytest.raises(InvalidInput, match="start < end"):
            run.failed_slice(now, now, "empty")
        with pytest.raises(InvalidInput, match="start"):
            run.failed_slice("yesterday", now, "502")  # type: ignore[arg-type]
    assert ledger.get_run(run.id).status is RunStatus.SUCCESS
    assert not ledger.carried("carry:bad")


def test_the_decorator_and_the_runner_take_the_policy(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    runner = Runner(ledger, reap_every=None, prune_every=None)

    @runner.job("carry:runner", provider="p", every="1h", on_partial="hold")
    def held(run: Run) -> None:
        run.failed_slice(T0 - timedelta(hours=1), T0, "502")

    @ledger.tracked("carry:tracked", max_carry_attempts=1)
    def gives_up_at_once(run: Run) -> None:
        run.item("a", "error")

    runner.run_once()
    (record,) = ledger.list_runs(job="carry:runner").items
    assert (record.status, record.on_partial) == (RunStatus.PARTIAL, "hold")
    assert ledger.watermark("carry:runner") is None
    gives_up_at_once()
    assert [i.state for i in ledger.carried("carry:tracked").items] == [CarryState.GIVEN_UP]
    step(clock)
    with ledger.run("carry:tracked") as run:
        assert not run.carried


def test_handed_items_are_whole_frozen_records(manual: tuple[Ledger, ManualClock]) -> None:
    """The hand-out builds its records its own (fast) way: they are the same
    records the constructor builds, frozen, with aware UTC timestamps, and the
    garbage collector is back on after it."""
    ledger, clock = manual
    with ledger.run("carry:records") as first:
        first.item("a", "error", group="g", source="s", data={"n": [1, "x"]}, error="HTTP 500")
        first.item("b", "error", error="HTTP 502")
    step(clock)
    assert gc.isenabled()
    with ledger.run("carry:records") as second:
        handed = second.carried.items
        assert gc.isenabled()
        assert [(i.key, i.group, i.source, i.data) for i in handed] == [
            ("a", "g", "s", {"n": [1, "x"]}),
            ("b", None, None, None),
        ]
        for item in handed:
            assert type(item) is CarriedItem
            rebuilt = CarriedItem(**{f.name: getattr(item, f.name) for f in fields(CarriedItem)})
            assert rebuilt == item and repr(rebuilt) == repr(item)
            assert item.created_at == item.updated_at == T0
            assert item.created_at.tzinfo is UTC
            assert (item.first_run, item.last_run, item.attempts) == (first.id, first.id, 1)
            assert item.state is CarryState.OWED
            with pytest.raises(FrozenInstanceError):
                item.key = "changed"  # type: ignore[misc]
        second.item("a", "success", group="g", source="s")
        second.item("b", "success")
    assert ledger.carried("carry:records").items == ()


def test_two_threads_first_reads_hand_one_set_of_entries(
    manual: tuple[Ledger, ManualClock],
) -> None:
    """Issue 15 (F10): two threads' first ``run.carried`` each read the
    database, and the run's end counted attempts on the second set only."""
    ledger, clock = manual
    with ledger.run("carry:threads") as first:
        first.item("a", "error")
    step(clock)
    reads: list[str] = []

    def slow_read(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SELECT carried."):  # the hand-out, not the start's check
            reads.append(statement)
            time.sleep(0.2)  # both threads are inside the first read

    event.listen(ledger.engine, "before_cursor_execute", slow_read)
    try:
        with ledger.run("carry:threads") as second, ThreadPoolExecutor(2) as pool:
            handed = list(pool.map(lambda _: second.carried, range(2)))
            read_while_running = len(reads)
    finally:
        event.remove(ledger.engine, "before_cursor_execute", slow_read)
    assert handed[0] is handed[1]
    assert read_while_running == 1
    (item,) = ledger.carried("carry:threads").items
    assert item.attempts == 2  # counted once for the second run
