"""Guarantee 2: every counter the job touched is in the database."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from runtrack import Ledger, RunStatus


def test_arbitrary_counter_names_all_persisted(ledger: Ledger) -> None:
    names = [f"counter_{i}" for i in range(50)] + ["offers fetched", "ñandú", "a.b/c:d"]
    with ledger.run("jobs:counters") as run:
        for i, name in enumerate(names):
            run.count(name, i)
            run.count(name)
        run.set_counter("ratio", 0.25)
    counters = ledger.get_run(run.id).counters
    assert counters == {**{n: i + 1 for i, n in enumerate(names)}, "ratio": 0.25}


def test_counters_persisted_when_the_block_fails(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.run("jobs:counters-fail") as run:
        run.count("fetched", 40)
        run.count("created", 3)
        raise RuntimeError("parse error")
    assert ledger.get_run(run.id).counters == {"fetched": 40, "created": 3}


def test_progress_persisted(ledger: Ledger) -> None:
    with ledger.run("jobs:progress") as run:
        run.set_total(10)
        run.advance(4)
        run.advance()
    record = ledger.get_run(run.id)
    assert (record.progress_done, record.progress_total) == (5, 10)


def test_heartbeat_flushes_counters_while_running(ledger: Ledger) -> None:
    with ledger.run("jobs:flush") as run:
        run.count("fetched", 11)
        run.advance(3)
        ledger.heartbeat_now()
        live = ledger.get_run(run.id)
        assert live.counters == {"fetched": 11}
        assert live.progress_done == 3
        assert live.heartbeat_at is not None


# -- one run handle, many threads ------------------------------------------------

THREADS = 4
EACH = 50_000


@pytest.fixture(autouse=True)
def frequent_switches() -> Iterator[None]:
    """Threads switch every few bytecodes, as they may on a loaded machine (or
    without the GIL), instead of every 5 ms: a lost update shows every time."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _in_threads(work: Callable[[int], None]) -> None:
    """``work(i)`` in THREADS threads started together; their errors re-raised."""
    barrier = threading.Barrier(THREADS)

    def body(i: int) -> None:
        barrier.wait()
        work(i)

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(body, i) for i in range(THREADS)]:
            future.result()


def test_counts_and_advances_from_many_threads_are_all_stored(ledger: Ledger) -> None:
    """Four threads x 50,000 increments each, while the heartbeat flushes (before:
    about 145,000 of 200,000 were stored)."""
    with ledger.run("jobs:threads") as run:
        run.set_total(THREADS * EACH)

        def work(i: int) -> None:
            for n in range(EACH):
                run.count("records")
                run.advance()
                if n % 10_000 == 0:
                    run.count(f"thread_{i}")
                    ledger.heartbeat_now()  # reads the counters while others write

        _in_threads(work)
        assert run.counters["records"] == THREADS * EACH
        assert run.progress == (THREADS * EACH, THREADS * EACH)
    record = ledger.get_run(run.id)
    assert record.counters == {"records": THREADS * EACH, **{f"thread_{i}": 5 for i in range(4)}}
    assert (record.progress_done, record.progress_total) == (THREADS * EACH, THREADS * EACH)


def test_every_method_of_the_handle_is_safe_across_threads(ledger: Ledger) -> None:
    with ledger.run("jobs:threads-all") as run:
        run.count("fetched", 5)  # this thread's share

        def work(i: int) -> None:
            for n in range(500):
                run.count("fetched")
                run.count("bytes", 0.5)
                run.item(f"t{i}-{n}", "success" if n % 5 else "not_found", group=f"g{n % 7}")
                run.note(f"thread {i} note {n}")
                if n % 100 == 0:
                    run.error(f"thread {i} page {n} failed", thread=i)
                    run.save_checkpoint({"thread": i, "n": n})
                    ledger.heartbeat_now()

        _in_threads(work)
        run.set_counter("fetched", 7)  # from here on, whatever the threads counted
        run.count("fetched")
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.PARTIAL
    assert record.counters == {"fetched": 8, "bytes": THREADS * 500 * 0.5}
    assert record.items == {"success": 1600, "not_found": 400, "skipped": 0, "error": 0}
    assert ledger.list_items(run.id, limit=1000).items[0].key.endswith("-0")
    assert len(record.notes or []) == 100
    assert record.error_details is not None and record.error_details["error_count"] == 20
    assert (record.groups_found, record.groups_missing) == (7, 0)
    assert record.checkpoint in [{"thread": i, "n": 400} for i in range(THREADS)]
