"""Guarantee 7: a cancel request reaches the running code at its next
interaction with the run handle, which raises; the run ends cancelled. A
worker that never notices is finalized by the reaper after the cancel grace
and fenced off; terminal runs never change, whoever races to finish them."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from runtrack import (
    InvalidTransition,
    LeaseLost,
    Ledger,
    ManualClock,
    RunCancelled,
    RunNotCancellable,
    RunStatus,
    RuntrackError,
)
from runtrack.run import Run

INTERVAL = 0.05


@pytest.fixture
def elsewhere(db_url: str) -> Iterator[Ledger]:
    """A second ledger on the same database: another process, as far as the
    first one can tell (its own engine, no shared run handles)."""
    with Ledger(db_url, heartbeat_interval=INTERVAL, migrate=False) as opened:
        yield opened


def run_in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            out["result"] = target(out)
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    return thread, out


def test_cancel_reaches_a_busy_loop_within_one_heartbeat(ledger: Ledger, elsewhere: Ledger) -> None:
    started = threading.Event()

    def busy(out: dict[str, Any]) -> None:
        with ledger.run("cancel:busy") as run:
            out["run"] = run
            started.set()
            try:
                while True:
                    run.count("spins")
            except RunCancelled:
                out["stopped_at"] = time.monotonic()
                raise

    thread, out = run_in_thread(busy)
    assert started.wait(10)
    time.sleep(2 * INTERVAL)  # a few heartbeats flush the counter meanwhile
    elsewhere.cancel(out["run"].id, by="ops", reason="wrong query")
    requested_at = time.monotonic()
    thread.join(10)
    assert "error" not in out  # RunCancelled is an outcome: not re-raised
    run: Run = out["run"]
    latency = out["stopped_at"] - requested_at
    # The next tick sees the request: at most one interval plus one tick.
    assert latency < INTERVAL + 0.25, f"cancel took {latency:.3f} s"
    record = ledger.get_run(run.id)
    assert run.status is RunStatus.CANCELLED
    assert record.status is RunStatus.CANCELLED
    assert record.counters == {"spins": run.counters["spins"]}
    assert record.counters["spins"] > 0
    assert (record.cancel_requested_by, record.cancel_reason) == ("ops", "wrong query")
    assert record.error_type == "cancelled"
    assert record.finished_at is not None


def test_except_exception_in_job_code_cannot_swallow_a_cancel(ledger: Ledger) -> None:
    swallowed = 0
    with ledger.run("cancel:swallow") as run:
        ledger.cancel(run.id)  # same process: the handle knows at once
        for _ in range(3):
            try:
                run.count("pages")
            except Exception:
                swallowed += 1
    assert swallowed == 0
    assert ledger.get_run(run.id).status is RunStatus.CANCELLED


def test_check_cancelled_serves_loops_that_touch_nothing_else(
    ledger: Ledger, elsewhere: Ledger
) -> None:
    def loop(out: dict[str, Any]) -> int:
        spins = 0
        with ledger.run("cancel:quiet") as run:
            out["run"] = run
            while True:
                spins += 1
                if spins % 1000 == 0:
                    run.check_cancelled()
        return spins

    thread, out = run_in_thread(loop)
    deadline = time.monotonic() + 10
    while "run" not in out and time.monotonic() < deadline:
        time.sleep(0.005)
    elsewhere.cancel(out["run"].id)
    thread.join(10)
    assert not thread.is_alive()
    assert ledger.get_run(out["run"].id).status is RunStatus.CANCELLED


def test_async_block_ends_cancelled(ledger: Ledger) -> None:
    async def job() -> Run:
        async with ledger.run("cancel:async") as run:
            run.count("pages", 2)
            ledger.cancel(run.id, reason="stop")
            await asyncio.sleep(0)
            run.count("pages")
        return run

    run = asyncio.run(job())
    record = ledger.get_run(run.id)
    assert (record.status, record.counters, record.error_message) == (
        RunStatus.CANCELLED,
        {"pages": 2},
        "stop",
    )


def test_cancelling_a_pending_run_is_immediate_and_frees_the_job(ledger: Ledger) -> None:
    pending = ledger.create_run("cancel:pending")
    record = ledger.cancel(pending.id, by="ops")
    assert record.status is RunStatus.CANCELLED
    assert record.cancel_requested_by == "ops"
    assert record.finished_at is not None
    with ledger.run("cancel:pending"):  # the lease went with it
        pass


def test_a_second_cancel_request_keeps_the_first(ledger: Ledger, elsewhere: Ledger) -> None:
    run = ledger.start_run("cancel:twice")
    elsewhere.cancel(run.id, by="alice", reason="first")
    elsewhere.cancel(run.id, by="bob", reason="second")
    record = elsewhere.get_run(run.id)
    assert (record.cancel_requested_by, record.cancel_reason) == ("alice", "first")
    ledger.finish_run(run, "success")


def test_terminal_runs_cannot_be_cancelled_and_never_flip(ledger: Ledger) -> None:
    with ledger.run("cancel:done") as run:
        run.count("offers", 3)
    before = ledger.get_run(run.id)
    with pytest.raises(RunNotCancellable) as caught:
        ledger.cancel(run.id)
    assert caught.value.current == RunStatus.SUCCESS
    assert "only pending or running" in str(caught.value)
    assert ledger.reap(stale_after=0.001) == []
    with pytest.raises(InvalidTransition):
        ledger.finish_run(run.id, "failed")
    with pytest.raises(RuntrackError):
        ledger.finish_run(run, "cancelled")
    assert ledger.get_run(run.id) == before


def test_stuck_worker_is_cancelled_by_the_reaper_and_fenced(db_url: str, ledger: Ledger) -> None:
    release = threading.Event()
    started = threading.Event()

    def stuck(out: dict[str, Any]) -> None:
        with ledger.run("cancel:stuck") as run:
            out["run"] = run
            run.count("before")
            started.set()
            release.wait(20)  # a blocking call that never checks the handle
            run.count("late")
            run.item("late", "success")

    thread, out = run_in_thread(stuck)
    assert started.wait(10)
    grace = timedelta(seconds=2)  # the first reap falls within it even on a loaded machine
    with Ledger(db_url, heartbeat_interval=INTERVAL, cancel_grace=grace, migrate=False) as ops:
        run_id = out["run"].id
        requested = ops.cancel(run_id, reason="taking too long").cancel_requested_at
        assert requested is not None
        assert ops.reap() == []  # heartbeating and within the grace
        while ops.now() <= requested + grace:
            time.sleep(0.02)
        assert ops.reap() == [run_id]
        reaped = ops.get_run(run_id)
        assert reaped.status is RunStatus.CANCELLED
        assert reaped.error_type == "cancel_timeout"
        assert reaped.counters == {"before": 1}
        with ledger.run("cancel:stuck"):  # the job is free again
            pass
        time.sleep(4 * INTERVAL)  # the stuck worker's heartbeat learns it lost the run
        release.set()
        thread.join(10)
        assert isinstance(out.get("error"), LeaseLost)
        assert ops.get_run(run_id) == reaped
        assert ops.list_items(run_id).items == []


# -- cancel, finish and reap racing on one run ---------------------------------

RACES = 500


TRIGGERS = {
    "sqlite": [
        "CREATE TABLE rt_transitions (run_id INTEGER, old_status TEXT, new_status TEXT)",
        "CREATE TRIGGER rt_record AFTER UPDATE OF status ON runs "
        "WHEN OLD.status IS NOT NEW.status BEGIN "
        "INSERT INTO rt_transitions VALUES (NEW.id, OLD.status, NEW.status); END",
    ],
    "postgresql": [
        "CREATE TABLE rt_transitions (run_id BIGINT, old_status TEXT, new_status TEXT)",
        "CREATE FUNCTION rt_record() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO rt_transitions VALUES (NEW.id, OLD.status, NEW.status); "
        "RETURN NULL; END $$",
        "CREATE TRIGGER rt_record AFTER UPDATE ON runs FOR EACH ROW "
        "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION rt_record()",
    ],
    "mariadb": [
        "CREATE TABLE rt_transitions (run_id BIGINT, old_status VARCHAR(16), "
        "new_status VARCHAR(16))",
        "CREATE TRIGGER rt_record AFTER UPDATE ON runs FOR EACH ROW BEGIN "
        "IF NOT (OLD.status <=> NEW.status) THEN "
        "INSERT INTO rt_transitions VALUES (NEW.id, OLD.status, NEW.status); END IF; END",
    ],
}


@contextmanager
def transitions_recorded(engine: sa.Engine, backend: str) -> Iterator[Callable[[], list[Any]]]:
    """Every committed status change of a run, as the database saw it (a
    trigger writes them in the same transaction, whichever client path made
    the change). Yields a function returning (run id, changes, terminal ones)."""
    with engine.begin() as conn:
        for statement in TRIGGERS[backend]:
            conn.exec_driver_sql(statement)
    count = (
        "SELECT run_id, COUNT(*), SUM(CASE WHEN new_status IN "
        "('success', 'partial', 'failed', 'cancelled') THEN 1 ELSE 0 END) "
        "FROM rt_transitions GROUP BY run_id"
    )

    def changes() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql(count).all())

    try:
        yield changes
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER rt_record" + " ON runs" * (backend == "postgresql"))
            if backend == "postgresql":
                conn.exec_driver_sql("DROP FUNCTION rt_record")
            conn.exec_driver_sql("DROP TABLE rt_transitions")


def race_once(
    worker: Ledger,
    reaper: Ledger,
    clock: ManualClock,
    pool: ThreadPoolExecutor,
    lags: list[float],
) -> tuple[list[str], Run, float]:
    """One race on a stale run: its owner finishes it, a reaper reaps it and
    an operator cancels it, each ``lags[i]`` seconds after the start signal.
    Returns the three outcomes, the run and how long reap and cancel took."""
    barrier = threading.Barrier(3)
    handle: list[Run] = []
    took: list[float] = []

    def finish() -> str:
        try:
            with worker.run("race:one") as run:
                handle.append(run)
                clock.advance(STALE + timedelta(seconds=1))  # now it is stale
                barrier.wait()
                time.sleep(lags[0])
                run.count("done")
        except LeaseLost:
            return "lost"
        # Also when the reaper won while the owner was ending cancelled: that
        # LeaseLost is logged, not raised (the cancel is an outcome).
        return "exited"

    def reap() -> str:
        barrier.wait()
        time.sleep(lags[1])
        began = time.monotonic()
        reaped = reaper.reap()
        took.append(time.monotonic() - began)
        return "reaped" if handle[0].id in reaped else "nothing"

    def cancel() -> str:
        barrier.wait()
        time.sleep(lags[2])
        began = time.monotonic()
        try:
            worker.cancel(handle[0].id)
        except RunNotCancellable:
            return "too late"
        finally:
            took.append(time.monotonic() - began)
        return "requested"

    futures = [pool.submit(f) for f in (finish, reap, cancel)]
    return [f.result(timeout=30) for f in futures], handle[0], max(took)


STALE = timedelta(seconds=10)


def test_cancel_finish_and_reap_racing_make_one_terminal_transition(
    db_url: str, backend: str
) -> None:
    clock = ManualClock()
    options: dict[str, Any] = dict(
        clock=clock, heartbeat_interval=9, stale_after=STALE, migrate=False
    )
    worker, reaper = Ledger(db_url, **options), Ledger(db_url, **options)
    outcomes: Counter[str] = Counter()
    ended = {}
    rng = random.Random(7)
    rival = 0.005  # how long reap and cancel take here, learnt as the races go
    with (
        worker,
        reaper,
        transitions_recorded(reaper.engine, backend) as transitions,
        ThreadPoolExecutor(3) as pool,
    ):
        for _ in range(RACES):
            # Each acts anywhere from before the others start to after they
            # end, whatever the speed of this database and machine.
            lags = [rng.uniform(0, 1.5 * rival) for _ in range(3)]
            results, run, took = race_once(worker, reaper, clock, pool, lags)
            rival = 0.9 * rival + 0.1 * took
            record = reaper.get_run(run.id)
            reaped = record.error_type == "heartbeat_timeout"
            assert reaped == (results[1] == "reaped"), (results, record.error_type)
            assert reaped or results[0] == "exited", results
            if results[2] == "too late":
                assert record.cancel_requested_at is None
            outcomes["reaped" if reaped else record.status.value] += 1
            ended[record.id] = record
        assert reaper.reap() == []
        assert not reaper.active_runs()
        # Exactly one terminal transition per run, as the database recorded them.
        assert sorted(transitions()) == [(run_id, 1, 1) for run_id in sorted(ended)]
        # Nothing flipped afterwards.
        assert {r.id: r for r in reaper.list_runs(job="race:one", limit=RACES).items} == ended
    assert sum(outcomes.values()) == RACES
    assert set(outcomes) == {"success", "cancelled", "reaped"}, outcomes  # all won some


def _swallow_bare(run: Run) -> None:
    try:  # noqa: SIM105
        run.count("fetched")
    except:  # noqa: E722 -- the point: job code that swallows everything
        pass


def _swallow_base(run: Run) -> None:
    with contextlib.suppress(BaseException):
        run.item("offer-1", "success")


@pytest.mark.parametrize("swallow", [_swallow_bare, _swallow_base])
def test_a_swallowed_cancel_still_ends_cancelled_and_keeps_the_watermark(
    ledger: Ledger, elsewhere: Ledger, swallow: Callable[[Run], None]
) -> None:
    with ledger.run("cancel:swallowed") as first:
        run_ok = first.id
    watermark = ledger.get_job("cancel:swallowed").watermark  # type: ignore[union-attr]
    assert watermark == ledger.get_run(run_ok).window_end
    with ledger.run("cancel:swallowed") as run:
        elsewhere.cancel(run.id, by="ops", reason="wrong query")
        ledger.heartbeat_now()  # the request reaches the handle
        swallow(run)  # told, caught, and carried on to the end of the block
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.CANCELLED
    assert record.error_message == "wrong query"
    job = ledger.get_job("cancel:swallowed")
    assert job is not None
    assert job.watermark == watermark
    assert job.checkpoint is None
    assert job.last_success_run_id == run_ok


def test_a_swallowed_cancel_followed_by_an_error_ends_cancelled(
    ledger: Ledger, elsewhere: Ledger
) -> None:
    with pytest.raises(KeyError), ledger.run("cancel:swallowed-then-failed") as run:
        elsewhere.cancel(run.id, by="ops")
        ledger.heartbeat_now()
        _swallow_bare(run)
        raise KeyError("cleanup failed")
    assert ledger.get_run(run.id).status is RunStatus.CANCELLED
