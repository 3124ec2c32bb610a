"""Built-in maintenance (reap, prune) happens once per interval however many
runners share the database; and a runner that opens and migrates its
database uses it in the same cycle."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from runtrack import Ledger, ManualClock, Run, Runner, RunStatus
from runtrack.store import dialects

MIN = timedelta(minutes=1)


def test_each_task_is_claimed_once_per_interval(manual_ledger: Ledger, clock: ManualClock) -> None:
    other = Ledger(manual_ledger.url, clock=clock)
    try:
        claims = [led.claim_maintenance("reap", "1m") for led in (manual_ledger, other) * 2]
        assert claims == [True, False, False, False]
        clock.advance(59)
        assert not other.claim_maintenance("reap", "1m")
        clock.advance(1)
        assert other.claim_maintenance("reap", "1m")
        assert not manual_ledger.claim_maintenance("reap", 60)
        assert manual_ledger.claim_maintenance("prune", "1d")  # tasks are independent
    finally:
        other.close()


def test_runners_reap_stale_runs_once_a_minute(db_url: str, clock: ManualClock) -> None:
    ledgers = [Ledger(db_url, clock=clock, stale_after=30, pending_ttl=30) for _ in range(2)]
    try:
        runners = [Runner(led, reap_every="1m", prune_every=None) for led in ledgers]
        dead = ledgers[0].create_run("board:orphan", provider="board")  # never claimed
        for runner in runners:
            runner.run_once()
        first = ledgers[0].last_maintenance("reap")
        assert first is not None and first[0] == clock.now()
        assert ledgers[0].get_run(dead.id).status is RunStatus.PENDING  # not expired yet
        clock.advance(45)
        for runner in runners:
            runner.run_once()  # within the minute: nobody reaps
        assert ledgers[0].get_run(dead.id).status is RunStatus.PENDING
        clock.advance(15)
        for runner in runners:
            runner.run_once()
        record = ledgers[0].get_run(dead.id)
        assert (record.status, record.error_type) == (RunStatus.CANCELLED, "expired")
        last = ledgers[0].last_maintenance("reap")
        assert last is not None and last[0] == clock.now() and last[1] == {"reaped": 1}
    finally:
        for led in ledgers:
            led.close()


def test_runner_prunes_old_history_daily(manual_ledger: Ledger, clock: ManualClock) -> None:
    runner = Runner(manual_ledger, prune_every="1d", prune_older_than="30d")

    @runner.job("board:daily", provider="board", every="1d")
    def daily(run: Run) -> None:
        run.count("offers", 3)

    for _ in range(5):
        runner.run_once()
        clock.advance(timedelta(days=1))
    assert manual_ledger.count_runs() == 5
    clock.advance(timedelta(days=31))  # all five are now older than 30 days
    runner.run_once()  # prunes first, then runs today's tick
    # Kept: the latest run before today's (latest success) and today's.
    assert manual_ledger.count_runs() == 2
    last = manual_ledger.last_maintenance("prune")
    assert last is not None and last[1]["runs"] == 4


@pytest.fixture
def fresh_url(backend: str, db_url: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (not even alembic's)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    url = sa.make_url(dialects.normalize_url(db_url))
    name = f"{url.database}_fresh_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(
        url.set(database="postgres" if backend == "postgresql" else "mysql"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if backend == "postgresql" else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()


def test_a_runner_that_migrates_then_really_runs_its_jobs(fresh_url: str) -> None:
    with Ledger(fresh_url, heartbeat_interval=0.05) as ledger:  # migrates the empty database
        runner = Runner(ledger)
        for n in range(3):

            @runner.job(f"board:{n}", provider="board", every="1h")
            def job(run: Run) -> None:
                run.count("offers", 7)

        summary = runner.run_once()
        assert (summary.ran, summary.succeeded) == (3, 3)
    # Read back through a separate connection: the runs are really there.
    with Ledger(fresh_url, migrate=False) as reader:
        runs = reader.list_runs().items
        assert len(runs) == 3
        assert {r.counters["offers"] for r in runs} == {7}
        assert all(r.status is RunStatus.SUCCESS for r in runs)
        assert reader.last_maintenance("reap") is not None
