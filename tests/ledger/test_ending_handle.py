"""Issue 15: the run handle from the moment its run starts ending.

Finalization reads the counters, the item tallies and the buffered items in
one step and the handle refuses every call from then on, so what is stored
agrees with what was accepted however many threads still record (F8); an
ended run's handle says RunFinished whatever happens after (F9, F10); the
fields that say which run it is cannot be replaced by its code (F11)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from runtrack import LeaseLost, Ledger, Run
from runtrack.errors import RunFinished
from runtrack.run import lose_lease
from runtrack.store import dialects
from runtrack.store.schema import run_items


@pytest.fixture
def tight_switching() -> Iterator[None]:
    """Threads switch as often as the interpreter allows: the races show."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def stored_rows(url: str, run_id: int) -> int:
    engine = dialects.make_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(run_items)
            return int(conn.execute(query.where(run_items.c.run_id == run_id)).scalar_one())
    finally:
        engine.dispose()


def record_until_refused(run: Run, seen: dict[str, list[Any]]) -> None:
    n = 0
    while True:
        try:
            run.item(f"k{n}", "success")
            seen["accepted"].append(n)
            n += 1
            run.count("c")
            seen["counted"].append(n)
            run.count("sum", 2)
        except (RunFinished, LeaseLost) as exc:
            seen["refused"].append(exc)
            return


@pytest.mark.parametrize("batch", [500, 7])  # 7: the recording thread flushes often
def test_what_is_stored_agrees_with_what_was_accepted_while_the_block_ends(
    db_url: str, tight_switching: None, batch: int
) -> None:
    with Ledger(db_url, heartbeat_interval=0.05, item_batch_size=batch) as ledger:
        ending_agrees(ledger, db_url)


def ending_agrees(ledger: Ledger, db_url: str) -> None:
    for trial in range(8):
        seen: dict[str, list[Any]] = {"accepted": [], "counted": [], "refused": []}
        with ledger.run(f"ending:{trial}") as run:
            thread = threading.Thread(target=record_until_refused, args=(run, seen))
            thread.start()
            time.sleep(0.01)
        thread.join()
        record = ledger.get_run(run.id)
        accepted, counted = len(seen["accepted"]), len(seen["counted"])
        assert [type(exc) for exc in seen["refused"]] == [RunFinished]
        assert stored_rows(db_url, run.id) == record.items["success"] == accepted
        assert record.counters.get("c", 0) == counted
        assert record.counters.get("sum", 0) in (2 * counted, 2 * counted - 2)


def test_an_ended_run_says_run_finished_even_after_a_late_lease_check(ledger: Ledger) -> None:
    """F9: a heartbeat flush that finds the run no longer ours (it is now
    success: it ended) must not turn RunFinished into LeaseLost."""
    with ledger.run("ending:lease") as run:
        run.item("a", "success")
    lose_lease(run, "success")
    with pytest.raises(RunFinished, match="has ended"):
        run.item("b", "success")
    with pytest.raises(RunFinished):
        run.count("c")


def test_a_run_ended_bare_stores_the_items_it_tallies(ledger: Ledger, db_url: str) -> None:
    """F12: the fallback that ends a run failed when its final values are
    refused kept the tallies of the buffered items but dropped the items."""
    with ledger.run("ending:bare") as run:
        for key in "abc":
            run.item(key, "success", group="g")
        run._started_at = "yesterday"  # type: ignore[assignment]  # refused at the end
    record = ledger.get_run(run.id)
    assert record.error_type == "finalize_error"
    assert record.items["success"] == 3 == stored_rows(db_url, run.id)
    tallies = [t for t in ledger.job_tallies() if t.job == "ending:bare"]
    assert sum(t.items.get("success", 0) for t in tallies) == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("job", "ending:other"),
        ("id", 1),
        ("uid", "someone-else"),
        ("window", None),
        ("started_at", None),
        ("params", {}),
        ("moves_watermark", False),
    ],
)
def test_which_run_a_handle_is_cannot_be_replaced_by_its_code(
    ledger: Ledger, field: str, value: object
) -> None:
    """F11: ``run.job = "other"`` inside the block moved the other job's
    watermark and last run, and never updated the real one."""
    with ledger.run("ending:other"):
        pass
    other = ledger.get_job("ending:other")
    with ledger.run("ending:identity") as run:
        before = getattr(run, field)
        with pytest.raises(AttributeError):
            setattr(run, field, value)
        assert getattr(run, field) == before
    assert ledger.get_job("ending:other") == other
    job = ledger.get_job("ending:identity")
    assert job is not None and job.last_run_id == run.id


def test_the_checkpoint_setter_refuses_after_the_end_like_save_checkpoint(
    ledger: Ledger,
) -> None:
    """F10: assigning ``run.checkpoint`` after the block was accepted silently."""
    with ledger.run("ending:checkpoint") as run:
        run.checkpoint = {"page": 1}
    with pytest.raises(RunFinished):
        run.checkpoint = {"page": 2}
    with pytest.raises(RunFinished):
        run.save_checkpoint({"page": 3})
    assert run.checkpoint == {"page": 1}
    job = ledger.get_job("ending:checkpoint")
    assert job is not None and job.checkpoint == {"page": 1}
