"""Database outages, through a TCP proxy the test cuts (the shared servers are
never stopped): a start fails with a clear error and writes nothing; a running
run outlives failed heartbeats; finalization retries until the database is
back, and a run whose end could never be written is reaped, not lost. The
runner's loop rides out the outage and goes on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from fault_proxy import FaultProxy
from reliability_support import Figures, wait_for

from runtrack import DatabaseClock, DatabaseUnavailable, Ledger, Runner, RunStatus
from runtrack.run import Run
from runtrack.store import dialects
from runtrack.store.sql import Store

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("timed")]

HEARTBEAT = 0.05


@pytest.fixture(params=["postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest) -> str:
    """An outage is a server's: SQLite has none to lose."""
    return str(request.param)


@pytest.fixture
def direct(db_url: str) -> Iterator[Ledger]:
    """The observer: connected straight to the server, never cut."""
    with Ledger(db_url, heartbeat_interval=HEARTBEAT, stale_after=0.4) as opened:
        yield opened


def behind(proxy: FaultProxy, db_url: str, **options: object) -> Ledger:
    """A ledger that reaches its database only through the proxy."""
    options.setdefault("heartbeat_interval", HEARTBEAT)
    return Ledger(proxy.url(db_url), **options)  # type: ignore[arg-type]


def restore_after(proxy: FaultProxy, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, proxy.restore)
    timer.start()
    return timer


def test_a_start_during_an_outage_is_a_clear_error_and_writes_nothing(
    proxy: FaultProxy, db_url: str, direct: Ledger, backend: str, figures: Figures
) -> None:
    with behind(proxy, db_url) as ledger:
        with ledger.run("outage:warm"):
            pass  # the pool now holds connections that the cut will break
        proxy.cut()
        with pytest.raises(DatabaseUnavailable, match="database error"), ledger.run("outage:start"):
            pytest.fail("the block must not run")
        with pytest.raises(DatabaseUnavailable):
            ledger.start_run("outage:start")
        with pytest.raises(DatabaseUnavailable):
            ledger.create_run("outage:start")
        with pytest.raises(DatabaseUnavailable):
            ledger.start_run("outage:warm")  # a job this ledger knows: the hot path
        with pytest.raises(DatabaseUnavailable):
            Ledger(proxy.url(db_url))  # opening a ledger is a start too
        proxy.restore()
        assert direct.count_runs(job="outage:warm") == 1
        assert direct.list_runs(job="outage:start").items == []
        assert direct.get_job("outage:start") is None
        with ledger.run("outage:start") as run:  # and the next start just works
            run.count("after")
        assert direct.get_run(run.id).status is RunStatus.SUCCESS
    figures.add("outages", backend, outages=proxy.outages, refused_starts=5)


def test_heartbeats_fail_during_an_outage_and_the_run_goes_on(
    proxy: FaultProxy,
    db_url: str,
    direct: Ledger,
    backend: str,
    figures: Figures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="runtrack")
    with behind(proxy, db_url, item_batch_size=10) as ledger, ledger.run("outage:beat") as run:
        run.count("before", 3)
        wait_for(lambda: direct.get_run(run.id).counters == {"before": 3}, what="a heartbeat")
        proxy.cut()
        for i in range(45):  # four full item batches meet the outage in this thread
            run.count("during")
            run.item(f"during-{i}", "success")
            time.sleep(0.01)

        def failed_ticks() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "heartbeat tick failed" in r.getMessage()]

        # A tick that meets the cut retries for up to the store's 5 s before it gives up, so
        # its warning may come after the loop above; it must come, not be silent.
        wait_for(failed_ticks, timeout=15, what="a failed heartbeat tick, logged")
        failed = failed_ticks()
        assert not run.cancel_requested
        proxy.restore()
        wait_for(
            lambda: direct.get_run(run.id).counters.get("during") == 45, what="a heartbeat after"
        )
        run.count("after")
    record = direct.get_run(run.id)
    assert record.status is RunStatus.SUCCESS
    assert record.counters == {"before": 3, "during": 45, "after": 1}
    assert record.items["success"] == 45
    assert len(direct.list_items(run.id, limit=100).items) == 45
    figures.add("outages", backend, outages=proxy.outages, failed_ticks=len(failed))


@pytest.mark.parametrize("backend", ["postgresql"])  # its answers carry a command tag
def test_a_start_whose_answer_is_lost_is_not_a_phantom_run(
    proxy: FaultProxy, db_url: str, direct: Ledger, backend: str, figures: Figures
) -> None:
    """The start committed, its answer never arrived, the store retried: the
    caller gets its run (not JobBusy from its own orphan), and no run is left
    active that nobody owns."""
    # One slot: the start is one INSERT that commits by itself; two slots: a
    # transaction that tries each slot in turn, then COMMIT.
    for job, concurrency, answer in [
        ("outage:blip", 1, b"INSERT 0 1\x00"),
        ("outage:blip-pair", 2, b"COMMIT\x00"),
    ]:
        # No heartbeats: the next answer of this kind is the start's.
        with behind(proxy, db_url, heartbeat_interval=3600) as ledger:
            with ledger.run(job, concurrency=concurrency):
                pass  # the job's row exists
            proxy.blip_on(answer)
            with ledger.run(job, concurrency=concurrency) as run:
                run.count("n")
        runs = direct.list_runs(job=job).items
        assert proxy.outages == concurrency, f"{job}: the answer was never lost"
        assert direct.get_run(run.id).status is RunStatus.SUCCESS
        assert [r.id for r in runs if r.is_active] == [], f"{job}: a phantom run holds a slot"
        assert len(runs) == 2, f"{job}: {len(runs)} runs for two starts"
    figures.add("outages", backend, outages=proxy.outages, lost_answers=2)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_finish_whose_answer_is_lost_is_still_the_owners(
    proxy: FaultProxy, db_url: str, direct: Ledger, backend: str, figures: Figures
) -> None:
    """The final write committed and its answer was lost: the retry finds the
    run already ended as it would have ended it, and says success (not
    LeaseLost), once."""
    ledger = behind(proxy, db_url, heartbeat_interval=3600)
    with ledger, ledger.run("outage:blip-end") as run:
        run.count("n", 2)
        run.item("only", "success")
        proxy.blip_on(b"COMMIT\x00")  # the next commit is the finalization's
    assert proxy.outages == 1
    record = direct.get_run(run.id)
    assert (record.status, record.counters, record.items["success"]) == ("success", {"n": 2}, 1)
    assert len(direct.list_items(run.id).items) == 1
    assert sum(t.runs for t in direct.job_tallies() if t.job == "outage:blip-end") == 1
    figures.add("outages", backend, outages=proxy.outages, lost_answers=1)


def test_finalization_retries_until_the_database_is_back(
    proxy: FaultProxy, db_url: str, direct: Ledger, backend: str, figures: Figures
) -> None:
    with behind(proxy, db_url, finalize_timeout=20.0) as ledger:
        with ledger.run("outage:end") as run:
            run.count("n", 7)
            run.item("only", "success")
            proxy.cut()
            restore_after(proxy, 1.0)
            began = time.monotonic()
        waited = time.monotonic() - began
    record = direct.get_run(run.id)
    assert record.status is RunStatus.SUCCESS
    assert record.counters == {"n": 7}
    assert record.items["success"] == 1
    assert 0.9 < waited < 15.0
    figures.add("outages", backend, outages=proxy.outages, finalized_after_outage=1)


def test_finalization_retries_when_the_clock_is_due_to_reread_the_server(
    proxy: FaultProxy, db_url: str, direct: Ledger, backend: str, figures: Figures
) -> None:
    engine = dialects.make_engine(proxy.url(db_url))
    clock = DatabaseClock(Store(engine).tx.server_now, recalibrate=0.2)
    ledger = behind(proxy, db_url, clock=clock, finalize_timeout=20.0)
    with ledger, ledger.run("outage:clock") as run:
        run.count("n")
        proxy.cut()
        time.sleep(0.3)  # the clock's next reading wants the server's time
        restore_after(proxy, 0.5)
    engine.dispose()
    record = direct.get_run(run.id)
    assert record.status is RunStatus.SUCCESS
    assert record.finished_at is not None and record.finished_at >= record.started_at
    figures.add("outages", backend, outages=proxy.outages, finalized_after_outage=1)


def test_items_wait_in_memory_during_an_outage_up_to_a_bound(
    proxy: FaultProxy, db_url: str, direct: Ledger, backend: str, figures: Figures
) -> None:
    ledger = behind(proxy, db_url, item_batch_size=2, finalize_timeout=20.0)
    with ledger, ledger.run("outage:bound") as run:
        proxy.cut()
        for i in range(run.max_buffered - 1):
            run.item(f"kept-{i}", "success")
        with pytest.raises(DatabaseUnavailable):
            run.item("one-too-many", "success")  # the caller learns it: memory is bounded
        restore_after(proxy, 0.2)
    record = direct.get_run(run.id)
    assert record.status is RunStatus.SUCCESS
    assert record.items["success"] == run.max_buffered
    assert len(direct.list_items(run.id, limit=100).items) == run.max_buffered
    figures.add("outages", backend, outages=proxy.outages, items_kept=run.max_buffered)


def test_finalization_that_never_lands_is_reaped_later_never_lost(
    proxy: FaultProxy, db_url: str, direct: Ledger, backend: str, figures: Figures
) -> None:
    with behind(proxy, db_url, finalize_timeout=0.5) as ledger:
        run = ledger.start_run("outage:lost-end")
        run.count("n", 5)
        wait_for(lambda: direct.get_run(run.id).counters == {"n": 5}, what="a heartbeat")
        with pytest.raises(ZeroDivisionError), ledger.run("outage:lost-failure"):
            proxy.cut()
            raise ZeroDivisionError  # the caller's exception wins over the outage
        with pytest.raises(DatabaseUnavailable):
            ledger.finish_run(run, RunStatus.SUCCESS)
        proxy.restore()
    assert direct.get_run(run.id).status is RunStatus.RUNNING  # not lost, not finished
    time.sleep(0.5)  # past the observer's stale threshold: nobody heartbeats it
    reaped = direct.reap()
    assert run.id in reaped and len(reaped) == 2
    record = direct.get_run(run.id)
    assert (record.status, record.error_type) == (RunStatus.FAILED, "heartbeat_timeout")
    assert record.counters == {"n": 5}
    assert direct.active_runs() == []
    figures.add("outages", backend, outages=proxy.outages, reaped_after_outage=len(reaped))


def test_the_runner_rides_out_an_outage_and_resumes(
    proxy: FaultProxy, db_url: str, direct: Ledger, backend: str, figures: Figures
) -> None:
    with behind(proxy, db_url, finalize_timeout=1.0, stale_after=60) as ledger:
        runner = Runner(ledger, reap_every=None, prune_every=None, max_sleep=0.1, jitter=0)

        @runner.job("outage:runner", provider="outage", every=0.05)
        def job(run: Run) -> None:
            run.count("pages")
            time.sleep(0.01)

        loop = threading.Thread(target=runner.run_forever, kwargs={"handle_signals": False})
        loop.start()
        try:
            wait_for(lambda: direct.count_runs(status="success") >= 3, what="runs before")
            proxy.cut()
            time.sleep(1.5)
            before = direct.count_runs(status="success")
            proxy.restore()
            wait_for(lambda: direct.count_runs(status="success") >= before + 3, what="runs after")
            assert loop.is_alive()
        finally:
            runner.stop()
            loop.join(timeout=30)
    assert not loop.is_alive()
    time.sleep(0.5)
    direct.reap()
    runs = direct.list_runs(job="outage:runner", limit=1000).items
    assert direct.active_runs() == []
    assert {r.status for r in runs} <= {RunStatus.SUCCESS, RunStatus.FAILED}
    figures.add("outages", backend, outages=proxy.outages, runner_runs=len(runs))
