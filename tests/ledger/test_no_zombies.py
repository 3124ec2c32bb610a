"""Guarantee 3: a run whose worker stopped heartbeating is finalized by the
reaper (failed, ``heartbeat_timeout``) with its last flushed counters, once,
however many reapers run; a healthy run keeps heartbeating through database
errors and its own finalization; the heartbeat thread is cheap and stops with
the ledger. (Real crashes and freezes: ``tests/process``.)"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from runtrack import ConfigurationError, InvalidInput, LeaseLost, Ledger, ManualClock, RunStatus
from runtrack.config import Settings
from runtrack.store import dialects
from runtrack.store.schema import jobs, runs
from runtrack.store.statements import BEAT_CHUNK

STALE = timedelta(seconds=30)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def frozen(db_url: str, clock: ManualClock) -> Iterator[Ledger]:
    """A worker whose heartbeats stopped: its clock never moves and its
    thread never ticks within a test (the interval is 29 s)."""
    with Ledger(db_url, clock=clock, heartbeat_interval=29, stale_after=STALE) as opened:
        yield opened


def reaper_at(db_url: str, clock: ManualClock, **options: Any) -> Ledger:
    return Ledger(db_url, clock=clock, heartbeat_interval=29, stale_after=STALE, **options)


def test_stale_run_is_reaped_with_its_last_heartbeat(
    db_url: str, frozen: Ledger, clock: ManualClock
) -> None:
    run = frozen.start_run("zombie:one", provider="p")
    run.count("pages", 7)
    run.set_total(10)
    run.advance(4)
    frozen.heartbeat_now()  # the last heartbeat before the worker "died"
    run.count("pages", 100)  # never flushed: lost with the worker
    beat = frozen.get_run(run.id).heartbeat_at
    assert beat is not None
    with reaper_at(db_url, clock) as reaper:
        clock.set(beat + STALE)  # exactly at the threshold: not yet stale
        assert reaper.reap() == []
        clock.advance(0.001)
        assert reaper.reap() == [run.id]
        assert reaper.reap() == []
        record = reaper.get_run(run.id)
        assert record.status is RunStatus.FAILED
        assert record.error_type == "heartbeat_timeout"
        assert (record.counters, record.progress_done, record.progress_total) == (
            {"pages": 7},
            4,
            10,
        )
        assert record.finished_at == clock.now()
        assert reaper.get_job("zombie:one").last_status is RunStatus.FAILED
        last = reaper.last_maintenance("reap")
        assert last is not None and last[1] == {"reaped": 0}
        with reaper.run("zombie:one"):  # its lease went with it
            pass


def test_a_run_reaped_at_the_same_clock_reading_is_still_lost_to_its_owner(
    db_url: str, frozen: Ledger, clock: ManualClock
) -> None:
    run = frozen.start_run("zombie:same-instant")
    clock.advance(STALE + timedelta(seconds=1))
    with reaper_at(db_url, clock) as reaper:
        assert reaper.reap() == [run.id]
    # The owner's end would be identical to the reaper's (same status, same
    # finished_at): still not its write, so it learns it lost the run.
    with pytest.raises(LeaseLost):
        frozen.finish_run(run, "failed")
    assert run.status is RunStatus.FAILED


def test_pending_run_nobody_starts_expires_after_the_pending_ttl(
    db_url: str, frozen: Ledger, clock: ManualClock
) -> None:
    """Issue 17: a pending run holds no lease, so it is never stale: it
    waits for a worker until the pending TTL (24 h), then ends cancelled."""
    pending = frozen.create_run("zombie:pending")
    assert pending.heartbeat_at is None
    with reaper_at(db_url, clock) as reaper:
        clock.advance(STALE + timedelta(hours=1))
        assert reaper.reap() == []
        clock.advance(timedelta(hours=23))
        assert reaper.reap() == [pending.id]
        record = reaper.get_run(pending.id)
        assert (record.status, record.error_type) == (RunStatus.CANCELLED, "expired")


def test_many_reapers_at_once_finalize_each_stale_run_once(
    db_url: str, frozen: Ledger, clock: ManualClock
) -> None:
    stale = [frozen.start_run(f"zombie:many:{i}").id for i in range(40)]
    clock.advance(STALE + timedelta(seconds=1))
    reapers = [reaper_at(db_url, clock) for _ in range(4)]
    barrier = threading.Barrier(len(reapers))

    def sweep(reaper: Ledger) -> list[int]:
        barrier.wait()
        return reaper.reap()

    try:
        with ThreadPoolExecutor(len(reapers)) as pool:
            found = [run_id for ids in pool.map(sweep, reapers) for run_id in ids]
    finally:
        for reaper in reapers:
            reaper.close()
    assert sorted(found) == stale  # every one, none twice
    assert frozen.count_runs(status="failed") == len(stale)


def test_reap_finds_stale_runs_through_the_status_heartbeat_index(
    db_url: str, backend: str, frozen: Ledger, clock: ManualClock
) -> None:
    now = clock.now().replace(tzinfo=None)
    with frozen.engine.begin() as conn:  # a big history the reaper must not scan
        conn.execute(sa.insert(jobs), [{"key": "zombie:history", "created_at": now}])
        conn.execute(sa.insert(runs), [history_row(i, now) for i in range(5000)])
    stale = frozen.start_run("zombie:indexed")
    analyze(frozen.engine, backend)
    clock.advance(STALE + timedelta(seconds=1))
    with reaper_at(db_url, clock) as reaper:
        selects: list[tuple[str, Any]] = []

        def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and " runs" in statement:
                selects.append((statement, parameters))

        event.listen(reaper.engine, "before_cursor_execute", seen)
        assert reaper.reap() == [stale.id]
        event.remove(reaper.engine, "before_cursor_execute", seen)
        assert len(selects) >= 3
        with reaper.engine.connect() as conn:
            for statement, parameters in selects:
                assert not full_scans(conn, backend, statement, parameters), statement


def history_row(i: int, now: Any) -> dict[str, Any]:
    return {
        "uid": f"history-{i:06d}",
        "job_key": "zombie:history",
        "status": "success",
        "triggered_by": "system",
        "created_at": now,
        "started_at": now,
        "finished_at": now,
        "heartbeat_at": now,
    }


def analyze(engine: sa.Engine, backend: str) -> None:
    statement = {"sqlite": "ANALYZE", "postgresql": "ANALYZE runs", "mariadb": "ANALYZE TABLE runs"}
    with engine.begin() as conn:
        result = conn.exec_driver_sql(statement[backend])
        if result.returns_rows:
            result.all()


def full_scans(conn: sa.Connection, backend: str, statement: str, parameters: Any) -> list[str]:
    """The plan lines of ``statement`` that read every row of ``runs``."""
    if backend == "sqlite":
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return [row[3] for row in plan if row[3].startswith("SCAN runs")]
    if backend == "postgresql":
        plan = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        return [row[0] for row in plan if "Seq Scan on runs" in row[0]]
    plan = conn.exec_driver_sql("EXPLAIN " + statement, parameters).mappings().all()
    return [str(dict(row)) for row in plan if row["table"] == "runs" and row["type"] == "ALL"]


# -- a healthy run keeps its heartbeat ------------------------------------------------


def test_no_running_run_ever_lacks_a_heartbeat(db_url: str) -> None:
    ledger = Ledger(db_url, heartbeat_interval=60, migrate=False)  # no tick in between
    with ledger.run("beat:block") as in_block:
        pass
    handle = ledger.start_run("beat:handle")
    pending = ledger.create_run("beat:pending")
    started = ledger.start_run(run_id=pending.id)

    @ledger.tracked("beat:tracked")
    def tracked() -> int:
        return ledger.active_runs("beat:tracked")[0].id

    tracked_id = tracked()
    for run_id in (in_block.id, handle.id, started.id, tracked_id):
        record = ledger.get_run(run_id)
        assert record.heartbeat_at is not None
        assert record.heartbeat_at == record.started_at  # set by the statement that started it
    ledger.finish_run(handle)
    ledger.finish_run(started)
    ledger.close()


@contextmanager
def heartbeats_failing(ledger: Ledger, backend: str, job: str) -> Iterator[None]:
    """A trigger makes the database refuse every heartbeat of ``job``'s runs."""
    create = {
        "sqlite": [
            "CREATE TRIGGER rt_fail_beat BEFORE UPDATE OF heartbeat_at ON runs "
            f"WHEN NEW.job_key = '{job}' AND NEW.heartbeat_at IS NOT OLD.heartbeat_at "
            "BEGIN SELECT RAISE(ABORT, 'injected heartbeat failure'); END"
        ],
        "postgresql": [
            "CREATE FUNCTION rt_fail_beat() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected heartbeat failure'; END $$",
            "CREATE TRIGGER rt_fail_beat BEFORE UPDATE ON runs FOR EACH ROW WHEN "
            f"(NEW.job_key = '{job}' AND NEW.heartbeat_at IS DISTINCT FROM OLD.heartbeat_at) "
            "EXECUTE FUNCTION rt_fail_beat()",
        ],
        "mariadb": [
            "CREATE TRIGGER rt_fail_beat BEFORE UPDATE ON runs FOR EACH ROW BEGIN "
            f"IF NEW.job_key = '{job}' AND NOT (NEW.heartbeat_at <=> OLD.heartbeat_at) THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected heartbeat failure'; "
            "END IF; END"
        ],
    }
    drop = ["DROP TRIGGER rt_fail_beat" + (" ON runs" if backend == "postgresql" else "")]
    if backend == "postgresql":
        drop.append("DROP FUNCTION rt_fail_beat")
    with ledger.engine.begin() as conn:
        for statement in create[backend]:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with ledger.engine.begin() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)


def test_failed_heartbeat_is_retried_next_tick_and_never_kills_the_run(
    ledger: Ledger, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    with ledger.run("beat:flaky") as run:
        run.count("pages")
        ledger.heartbeat_now()
        before = ledger.get_run(run.id)
        with heartbeats_failing(ledger, backend, "beat:flaky"):
            for _ in range(10):  # the job goes on while its heartbeats fail
                run.count("pages")
                time.sleep(0.02)
            wait_for(lambda: failed_ticks(caplog) >= 2)
            assert ledger.get_run(run.id).heartbeat_at == before.heartbeat_at
        ticks = ledger._heartbeat.ticks
        wait_for(lambda: ledger._heartbeat.ticks >= ticks + 2)  # the thread lived on
        live = ledger.get_run(run.id)
        assert live.heartbeat_at > before.heartbeat_at
        assert live.counters == {"pages": 11}
        run.count("pages")
    assert ledger.get_run(run.id).status is RunStatus.SUCCESS


def failed_ticks(caplog: pytest.LogCaptureFixture) -> int:
    return sum("heartbeat tick failed" in r.getMessage() for r in caplog.records)


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


RACES = 60


def test_owner_finishing_never_loses_to_its_own_heartbeat(ledger: Ledger) -> None:
    # A second thread ticks without pause, so ticks overlap every finalization.
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            ledger.heartbeat_now()

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for i in range(RACES):
            with ledger.run("beat:race") as run:  # LeaseLost here would fail the test
                run.count("n", i)
                run.item(f"item-{i}", "success")
            assert run.status is RunStatus.SUCCESS
    finally:
        stop.set()
        thread.join()
    assert ledger.count_runs(job="beat:race", status="success") == RACES
    finished = ledger.list_runs(job="beat:race", limit=RACES).items
    assert all(len(ledger.list_items(r.id).items) == 1 for r in finished)


def test_heartbeat_thread_stops_on_close(db_url: str, ledger: Ledger) -> None:
    before = set(threading.enumerate())
    closing = Ledger(db_url, heartbeat_interval=0.05, migrate=False)
    run = closing.start_run("beat:close")
    wait_for(lambda: ledger.get_run(run.id).heartbeat_at > run.started_at)
    (thread,) = [t for t in set(threading.enumerate()) - before if t.name == "runtrack-heartbeat"]
    closing.close()
    assert not thread.is_alive()
    beat = ledger.get_run(run.id)
    time.sleep(0.2)  # no more heartbeats: the run is left for the reaper
    assert ledger.get_run(run.id) == beat


# -- cost ---------------------------------------------------------------------------------


class DriverStatements:
    """Counts the statements the driver sends to the database, whatever path
    sent them (SQLAlchemy's or the store's prepared one), by first word. Left
    out: transaction control and the pool's pre-ping (``;``)."""

    IGNORED = frozenset({"BEGIN", "COMMIT", "ROLLBACK", ";"})

    def __init__(self, engine: sa.Engine) -> None:
        self.counts: Counter[str] = Counter()
        self.active = False
        event.listen(engine, "connect", self._instrument)

    def _seen(self, sql: Any, times: int = 1) -> None:
        text = bytes(sql).decode() if isinstance(sql, bytes | bytearray) else str(sql)
        word = text.split(None, 1)[0].upper()
        if self.active and word not in self.IGNORED:
            self.counts[word] += times

    def _instrument(self, dbapi_connection: Any, _record: Any) -> None:
        module = type(dbapi_connection).__module__
        if module.startswith("sqlite3"):
            dbapi_connection.set_trace_callback(self._seen)
        elif module.startswith("psycopg"):
            dbapi_connection.cursor_factory = self._psycopg_cursor()
        else:
            dbapi_connection.cursorclass = self._pymysql_cursor()

    def _psycopg_cursor(self) -> type:
        import psycopg

        seen = self._seen

        class Counting(psycopg.Cursor[Any]):
            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                seen(query)
                return super().execute(query, params, **kw)

            def executemany(self, query: Any, params_seq: Any, **kw: Any) -> None:
                params_seq = list(params_seq)
                seen(query, len(params_seq))  # the server runs it once per row
                super().executemany(query, params_seq, **kw)

            def copy(self, statement: Any, params: Any = None, **kw: Any) -> Any:
                seen(statement)
                return super().copy(statement, params, **kw)

        return Counting

    def _pymysql_cursor(self) -> type:
        import pymysql.cursors

        seen = self._seen

        class Counting(pymysql.cursors.Cursor):
            def execute(self, query: Any, args: Any = None) -> Any:
                seen(query)  # executemany calls this once per statement it sends
                return super().execute(query, args)

        return Counting

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        self.counts.clear()
        self.active = True
        try:
            yield self.counts
        finally:
            self.active = False


def test_a_thousand_active_runs_flush_in_one_tick_of_few_statements(db_url: str) -> None:
    engine = dialects.make_engine(db_url)
    driver = DriverStatements(engine)
    ledger = Ledger(engine=engine, heartbeat_interval=60, migrate=False)
    with ThreadPoolExecutor(4) as pool:
        handles = list(pool.map(lambda i: ledger.start_run(f"beat:bulk:{i}"), range(1000)))
    for i, run in enumerate(handles):
        run.count("fetched", i)
        run.advance(i % 7)
    chunks = math.ceil(len(handles) / BEAT_CHUNK)
    began = time.monotonic()
    with driver.counting() as sent:
        ledger.heartbeat_now()
    took = time.monotonic() - began
    # One UPDATE and one SELECT per 500 runs, nothing else.
    assert (sent["UPDATE"], sent["SELECT"]) == (chunks, chunks), sent
    assert sum(sent.values()) == 2 * chunks, sent
    sample = [ledger.get_run(handles[i].id) for i in (0, 499, 500, 999)]
    assert [r.counters["fetched"] for r in sample] == [0, 499, 500, 999]
    assert [r.progress_done for r in sample] == [0, 499 % 7, 500 % 7, 999 % 7]
    assert all(r.heartbeat_at > r.started_at for r in sample)
    assert took < 30  # a sanity bound only: timing is the benchmark's job

    for i, run in enumerate(handles):  # and the items they buffered meanwhile
        run.item(f"item-{i}", "success")
    with driver.counting() as sent:
        ledger.heartbeat_now()
    # The heartbeat as before, then the fence: one locking SELECT per 500
    # runs. (How the INSERT of the rows is batched is the items' business.)
    assert (sent["UPDATE"], sent["SELECT"]) == (chunks, 2 * chunks), sent
    assert sent["INSERT"] + sent["COPY"] >= 1, sent
    assert all(len(ledger.list_items(r.id).items) == 1 for r in sample)
    ledger.close()
    engine.dispose()


# -- the stale threshold is validated once, for Settings and Ledger alike -----


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"heartbeat_interval": 1.0, "stale_after": 0.3}, "stale_after"),
        ({"heartbeat_interval": 1.0, "stale_after": 1.0}, "stale_after"),
        ({"stale_after": 0}, "stale_after"),
        ({"stale_after": 0.0}, "stale_after"),
        ({"stale_after": -5.0}, "stale_after"),
        ({"heartbeat_interval": 0.01}, "heartbeat_interval"),
        ({"cancel_grace": 0}, "cancel_grace"),
    ],
)
def test_the_ledger_refuses_a_stale_threshold_settings_refuses(
    db_url: str, options: dict[str, float], field: str
) -> None:
    """A threshold within the heartbeat interval would have the ledger's own
    reaper kill healthy runs; 0 used to become 60 s without a word."""
    with pytest.raises(InvalidInput) as caught:
        Ledger(db_url, **options)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert caught.value.allowed
    with pytest.raises(ConfigurationError, match=f"RUNTRACK_{field.upper()}"):
        Settings(database_url=db_url, **options).validated()  # type: ignore[arg-type]


def test_a_valid_stale_threshold_is_kept_as_given(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=1.0, stale_after=1.5) as given:
        assert given.stale_after == timedelta(seconds=1.5)
    with Ledger(db_url, heartbeat_interval=20.0) as default:
        assert default.stale_after == timedelta(seconds=80)
    settings = Settings(database_url=db_url, heartbeat_interval=1.0, stale_after=1.5)
    with Ledger.from_settings(settings.validated()) as configured:
        assert configured.stale_after == timedelta(seconds=1.5)
