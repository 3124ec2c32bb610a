"""Issue 15 (F13): a session that holds a run's row lock and stops (a worker
frozen by SIGSTOP inside its heartbeat transaction) must not block ``reap``
or ``finish_run`` elsewhere forever: lock waits are bounded, end in
DatabaseBusy (nothing written, try later), and the runner's maintenance takes
that as "next cycle", never as a crash. On PostgreSQL the server also ends a
session left idle inside a transaction, so the frozen worker's lock goes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from runtrack import DatabaseBusy, Ledger, ManualClock, RunStatus
from runtrack.runner.maintenance import Maintenance
from runtrack.store import dialects
from runtrack.store.schema import runs

STALE = timedelta(seconds=30)


# SQLite has no row locks: its busy timeout already bounds the wait.
on_servers = pytest.mark.parametrize("backend", ["postgresql", "mariadb"])


@pytest.fixture
def server_url(db_url: str) -> str:
    return db_url


@contextmanager
def row_locked(url: str, run_id: int) -> Iterator[None]:
    """Another session holding the run's row lock, as a frozen heartbeat does."""
    engine = dialects.make_engine(url, lock_wait=60)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id).with_for_update())
            yield
    finally:
        engine.dispose()


def stale_run(url: str, clock: ManualClock) -> int:
    with Ledger(url, clock=clock, heartbeat_interval=29, stale_after=STALE) as worker:
        run = worker.start_run("frozen:one")  # its heartbeat (29 s) never ticks
    clock.advance(STALE + timedelta(seconds=1))
    return run.id


@contextmanager
def reaper(url: str, clock: ManualClock) -> Iterator[Ledger]:
    engine = dialects.make_engine(url, lock_wait=1)
    try:
        with Ledger(engine=engine, clock=clock, heartbeat_interval=29, stale_after=STALE) as led:
            yield led
    finally:
        engine.dispose()


@on_servers
def test_reap_and_finish_by_id_wait_a_bounded_time_for_a_held_row_lock(
    server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    run_id = stale_run(server_url, clock)
    with reaper(server_url, clock) as ledger, row_locked(server_url, run_id):
        began = time.monotonic()
        with pytest.raises(DatabaseBusy, match="try again later"):
            ledger.reap()
        with pytest.raises(DatabaseBusy):
            ledger.finish_run(run_id, RunStatus.FAILED)
        assert time.monotonic() - began < 10  # two waits of 1 s, not forever
        # The runner's maintenance: busy is "next cycle", not a crash.
        with caplog.at_level(logging.WARNING, logger="runtrack"):
            tasks = Maintenance("1s", None, "1d", check_every=None)
            tasks.run(ledger)
        assert "will try again next cycle" in caplog.text
        assert ledger.get_run(run_id).status is RunStatus.RUNNING
    with reaper(server_url, clock) as ledger:  # the lock is gone: the next cycle reaps it
        assert ledger.reap() == [run_id]
        assert ledger.get_run(run_id).status is RunStatus.FAILED


@pytest.mark.parametrize("backend", ["postgresql"])  # idle_in_transaction_session_timeout
def test_postgresql_ends_a_session_frozen_inside_its_transaction(server_url: str) -> None:
    clock = ManualClock()
    run_id = stale_run(server_url, clock)
    frozen = dialects.make_engine(server_url, idle_in_transaction=0.5)
    try:
        conn = frozen.connect()
        tx = conn.begin()
        conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id).with_for_update())
        time.sleep(1.5)  # the worker is frozen: the server ends its session
        with reaper(server_url, clock) as ledger:
            assert ledger.reap() == [run_id]
        with pytest.raises(sa.exc.DBAPIError):
            tx.rollback()
            conn.execute(sa.text("SELECT 1"))
        conn.close()
    finally:
        frozen.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])  # idle_in_transaction_session_timeout
def test_a_tighter_idle_bound_set_on_the_server_is_kept(server_url: str) -> None:
    # An operator who bounds idle transactions tighter for partitions (here on
    # the database) keeps that bound; where none is set, the ledger's applies.
    def bound(url: str, **options: float) -> str:
        engine = dialects.make_engine(url, **options)
        try:
            with engine.connect() as conn:
                return str(
                    conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
                )
        finally:
            engine.dispose()

    database = sa.make_url(server_url).database
    assert bound(server_url) == "1min"
    assert bound(server_url, idle_in_transaction=0.5) == "500ms"
    admin = dialects.make_engine(server_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f'ALTER DATABASE "{database}" SET idle_in_transaction_session_timeout = 3000'
            )
            conn.commit()
        assert bound(server_url) == "3s"
        assert bound(server_url, idle_in_transaction=0.5) == "500ms"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f'ALTER DATABASE "{database}" RESET idle_in_transaction_session_timeout'
            )
            conn.commit()
        admin.dispose()
