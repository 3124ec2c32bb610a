"""The per-run hot path keeps its guarantees while it saves round trips: a
finalization that lost its run writes nothing (on PostgreSQL its statements go
in one round trip and are rolled back), every end (the owner's, by id, a
reap) writes run, job and tally in that order, and pooled connections are
pinged only after sitting idle, yet a server that dropped them is never seen."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from runtrack import ItemStatus, LeaseLost, Ledger, ManualClock, RunStatus
from runtrack.store import dialects
from runtrack.store.prepared import RawConnection
from runtrack.store.schema import provider_limits

STALE = timedelta(seconds=60)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_a_finalization_that_lost_its_run_changes_nothing(db_url: str, clock: ManualClock) -> None:
    with Ledger(db_url, clock=clock, heartbeat_interval=59, stale_after=STALE) as owner:
        with owner.run("hot:kept") as kept:
            kept.count("pages")
        before = owner.get_job("hot:kept")
        run = owner.start_run("hot:kept")
        run.item("left-in-the-buffer", ItemStatus.SUCCESS)
        clock.advance(STALE + timedelta(seconds=1))
        assert owner.reap() == [run.id]
        reaped = owner.get_job("hot:kept")
        with pytest.raises(LeaseLost):
            owner.finish_run(run, "success")
        job = owner.get_job("hot:kept")
        assert job is not None and reaped is not None and before is not None
        assert (job.last_run_id, job.last_status) == (run.id, RunStatus.FAILED)
        assert job.watermark == reaped.watermark == before.watermark
        assert job.consecutive_failures == reaped.consecutive_failures == 1
        tallies = {t.status: t.runs for t in owner.job_tallies() if t.job == "hot:kept"}
        assert tallies == {RunStatus.SUCCESS: 1, RunStatus.FAILED: 1}
        assert owner.list_items(run.id).items == []  # the final flush went with the run
        assert owner.get_run(run.id).status is RunStatus.FAILED


def test_a_finalization_writes_run_job_tally_and_last_items_together(ledger: Ledger) -> None:
    with ledger.run("hot:together") as run:
        run.count("fetched", 3)
        run.item("a", "success", data={"price": 1.5})
        run.item("b", "error", error="timeout")
    record = ledger.get_run(run.id)
    assert (record.status, record.counters) == (RunStatus.PARTIAL, {"fetched": 3})
    assert record.items == {"success": 1, "not_found": 0, "skipped": 0, "error": 1}
    items = {item.key: item for item in ledger.list_items(run.id).items}
    assert items["a"].data == {"price": 1.5} and items["b"].error == "timeout"
    job = ledger.get_job("hot:together")
    assert job is not None and (job.last_run_id, job.last_status) == (run.id, RunStatus.PARTIAL)
    tallies = [t for t in ledger.job_tallies() if t.job == "hot:together"]
    assert [(t.status, t.runs, t.items["error"]) for t in tallies] == [(RunStatus.PARTIAL, 1, 1)]


#: Tests of connections to a server (SQLite has none to drop or ping).
on_servers = pytest.mark.parametrize("backend", ["postgresql", "mariadb"])


@pytest.fixture
def server_ledger(db_url: str) -> Iterator[Ledger]:
    with Ledger(db_url, heartbeat_interval=60) as opened:
        yield opened


def _count_pings(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    dialect = ledger.engine.dialect
    ping = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


@on_servers
def test_back_to_back_runs_do_not_ping_and_an_idle_connection_does(
    server_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dialects, "PING_AFTER_IDLE", 0.2)
    pings = _count_pings(server_ledger, monkeypatch)
    for _ in range(20):
        with server_ledger.run("hot:busy") as run:
            run.count("n")
    assert pings == []
    time.sleep(0.3)
    with server_ledger.run("hot:busy"):
        pass
    assert pings  # the connection sat idle: checked before use


def _drop_connections(url: str, backend: str) -> int:
    """Kill every other session on the test database, as a restarted server would."""
    engine = sa.create_engine(dialects.normalize_url(url), poolclass=sa.NullPool)
    with engine.connect() as conn:
        if backend == "postgresql":
            query = (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            killed = len(conn.exec_driver_sql(query).all())
        else:
            query = (
                "SELECT id FROM information_schema.processlist "
                "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
            )
            ids = [row[0] for row in conn.exec_driver_sql(query)]
            for session in ids:
                conn.exec_driver_sql(f"KILL {int(session)}")
            killed = len(ids)
    engine.dispose()
    return killed


@on_servers
def test_connections_dropped_while_idle_are_replaced_before_use(
    server_ledger: Ledger, db_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dialects, "PING_AFTER_IDLE", 0.1)
    with server_ledger.run("hot:dropped"):
        pass
    assert _drop_connections(db_url, backend) >= 1
    time.sleep(0.2)
    # Straight on the engine, without the store's retries: the ping found the
    # dead connection and the pool handed out a new one.
    with server_ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    with server_ledger.run("hot:dropped") as run:
        run.count("after")
    assert server_ledger.get_run(run.id).status is RunStatus.SUCCESS


@on_servers
def test_connections_dropped_just_now_are_retried_by_the_store(
    server_ledger: Ledger, db_url: str, backend: str
) -> None:
    with server_ledger.run("hot:just-now"):
        pass
    assert _drop_connections(db_url, backend) >= 1
    with server_ledger.run("hot:just-now") as run:  # no ping: the store retries the start
        run.item("x", "success")
    record = server_ledger.get_run(run.id)
    assert (record.status, record.items["success"]) == (RunStatus.SUCCESS, 1)


@on_servers
def test_a_claim_retried_after_its_connection_dropped_starts_when_it_succeeds(
    db_url: str, backend: str
) -> None:
    """The claim reads its clock in each attempt: a claim retried through an
    outage does not date the run's start back to before the outage (where
    the job's previous run may still have held its slot)."""
    began = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ManualClock(began)
    with Ledger(db_url, clock=clock, heartbeat_interval=59) as ledger:
        ledger.ensure_job("hot:claimed")
        ledger.trigger("hot:claimed", by="test")
        cut: list[str] = []

        def cut_once(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if not cut and "ORDER BY runs.priority" in statement:
                cut.append(statement)
                clock.advance(timedelta(seconds=10))  # the outage lasts 10 s
                assert _drop_connections(db_url, backend) >= 1

        sa.event.listen(ledger.engine, "before_cursor_execute", cut_once)
        run = ledger.claim({"hot:claimed": 1})
        assert run is not None and cut
        assert run.started_at == began + timedelta(seconds=10)
        assert ledger.get_run(run.id).started_at == began + timedelta(seconds=10)
        ledger.finish_run(run, RunStatus.SUCCESS)


@on_servers
def test_a_start_retried_after_its_connection_dropped_starts_when_it_succeeds(
    db_url: str, backend: str
) -> None:
    """The same for a direct start: its retry takes the slot later than the
    start was asked for (``created_at``), and says so in ``started_at``."""
    began = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ManualClock(began)
    with Ledger(db_url, clock=clock, heartbeat_interval=59) as ledger:
        ledger.ensure_job("hot:started")
        cut: list[str] = []

        def cut_once(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if not cut and statement.startswith("INSERT INTO runs"):
                cut.append(statement)
                clock.advance(timedelta(seconds=10))
                assert _drop_connections(db_url, backend) >= 1

        sa.event.listen(ledger.engine, "before_cursor_execute", cut_once)
        run = ledger.start_run("hot:started")
        assert cut
        record = ledger.get_run(run.id)
        assert record.created_at == began
        assert run.started_at == record.started_at == began + timedelta(seconds=10)
        ledger.finish_run(run, RunStatus.SUCCESS)


def test_item_batches_keep_every_row_and_the_recorded_order(db_url: str) -> None:
    # 300 a batch: on SQLite, groups of rows per statement and a remainder.
    with Ledger(db_url, heartbeat_interval=60, item_batch_size=300) as ledger:
        with ledger.run("hot:order") as run:
            for i in range(1000):
                status = ItemStatus.SKIPPED if i % 7 == 0 else "success"
                run.item(f"k{i:04d}", status, data={"i": i} if i % 3 == 0 else None)
        stored, cursor = [], None
        while True:
            page = ledger.list_items(run.id, cursor=cursor, limit=400)
            stored += page.items
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert ledger.get_run(run.id).items["success"] == 857
    assert [item.key for item in stored] == [f"k{i:04d}" for i in range(1000)]
    assert [item.id for item in stored] == sorted(item.id for item in stored)
    assert [item.data for item in stored[:4]] == [{"i": 0}, None, None, {"i": 3}]
    assert sum(item.status is ItemStatus.SKIPPED for item in stored) == 143


@on_servers
def test_pooled_connections_go_back_in_transactions_mode(
    server_ledger: Ledger, backend: str
) -> None:
    # The hot path runs some statements in the driver's autocommit mode; the
    # store's other transactions must never get such a connection.
    with server_ledger.run("hot:pool") as run:
        run.item("a", "success")
    with pytest.raises(ZeroDivisionError), server_ledger.run("hot:pool"):
        raise ZeroDivisionError
    held = [server_ledger.engine.raw_connection() for _ in range(3)]
    try:
        for connection in held:
            driver: Any = connection.driver_connection
            on = driver.get_autocommit() if backend == "mariadb" else driver.autocommit
            assert not on
    finally:
        for connection in held:
            connection.close()


@contextmanager
def _ends_written(ledger: Ledger) -> Iterator[list[tuple[str, str]]]:
    """(verb, table) of each write to runs, jobs and tallies the ledger sends,
    in order (the hot path's too: its cursor events fire as SQLAlchemy's)."""
    sent: list[tuple[str, str]] = []
    pattern = re.compile(r"\s*(UPDATE|INSERT INTO)\s+[`\"]?(runs|jobs|job_tallies)\b", re.I)

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        found = pattern.match(statement)
        if found:
            sent.append((found.group(1).split()[0].lower(), found.group(2)))

    sa.event.listen(ledger.engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        sa.event.remove(ledger.engine, "before_cursor_execute", seen)


def test_every_end_writes_run_job_and_tally_in_that_order(db_url: str, clock: ManualClock) -> None:
    # One writer for every end: the owner's (pipelined on PostgreSQL, the
    # same statements), one by id, and a reap of several runs at once (their
    # job updates in one batch, their tallies summed into one row).
    order = [("update", "runs"), ("update", "jobs"), ("insert", "job_tallies")]
    with Ledger(db_url, clock=clock, heartbeat_interval=59, stale_after=STALE) as ledger:
        owned = ledger.start_run("hot:ends")
        with _ends_written(ledger) as sent:
            ledger.finish_run(owned, "success")
        assert sent == order
        pending = ledger.create_run("hot:ends")
        with _ends_written(ledger) as sent:
            ledger.finish_run(pending.id, "cancelled")
        assert sent == order
        stale = [ledger.start_run("hot:ends", concurrency=2) for _ in range(2)]
        clock.advance(STALE + timedelta(seconds=1))
        with _ends_written(ledger) as sent:
            assert sorted(ledger.reap()) == sorted(run.id for run in stale)
        assert sent == order
        job = ledger.get_job("hot:ends")
        assert job is not None and (job.last_run_id, job.last_status) == (
            max(run.id for run in stale),
            RunStatus.FAILED,
        )
        assert job.consecutive_failures == 2
        tallies = {t.status: t.runs for t in ledger.job_tallies() if t.job == "hot:ends"}
        assert tallies == {RunStatus.SUCCESS: 1, RunStatus.CANCELLED: 1, RunStatus.FAILED: 2}


INSERT_LIMIT = provider_limits.insert()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite", "mariadb"])
def test_a_pipelined_savepoint_that_fails_is_undone_alone(ledger: Ledger) -> None:
    """A statement that fails in a pipelined block (PostgreSQL: its error
    surfaces when the block ends, or at a later statement of the block) undoes
    that block's savepoint only: the transaction goes on, and a block sent
    with its COMMIT commits what came before it (a claim's slot taken by
    another claimer, then the next slot). Elsewhere the same calls run
    statement by statement."""
    at = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)  # naive UTC, as stored
    ledger.limit_provider("taken", 1)
    raw = RawConnection(ledger.engine, {})
    try:
        raw.begin()
        raw.execute(INSERT_LIMIT, {"provider": "kept", "max_running": 2, "updated_at": at})
        with pytest.raises(IntegrityError), raw.pipelined(commit=True), raw.begin_nested():
            raw.execute(INSERT_LIMIT, {"provider": "taken", "max_running": 3, "updated_at": at})
            raw.execute(INSERT_LIMIT, {"provider": "never", "max_running": 3, "updated_at": at})
        with raw.pipelined(commit=True), raw.begin_nested():
            raw.execute(INSERT_LIMIT, {"provider": "added", "max_running": 4, "updated_at": at})
        raw.commit()
    finally:
        raw.close()
    assert ledger.provider_limits() == {"added": 4, "kept": 2, "taken": 1}


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_claim_runs_prepared_with_reads_in_between(server_ledger: Ledger) -> None:
    """psycopg prepares a statement on its connection after a few runs and
    forgets them all at a ROLLBACK: reads that ended with one kept a worker's
    claim, run after run, parsed and planned anew each time."""
    server_ledger.ensure_job("hot:queued")
    for n in range(8):
        server_ledger.trigger("hot:queued", by="test", params={"n": n})
    for _ in range(8):
        run = server_ledger.claim({"hot:queued": 1})
        assert run is not None
        server_ledger.get_run(run.id)  # a read between claims, as a worker's loop has
        server_ledger.finish_run(run, RunStatus.SUCCESS)
    assert server_ledger.engine.pool.checkedin() == 1  # the one connection every call used
    with server_ledger.engine.connect() as conn:
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars()
        statements = list(prepared)
    assert any("SKIP LOCKED" in statement for statement in statements), statements
