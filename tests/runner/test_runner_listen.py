"""On PostgreSQL an idle runner LISTENs on the queue's channel: a trigger
wakes it at once, not at its next poll; a lost LISTEN connection falls back
to polling and is opened again."""

from __future__ import annotations

import time

import pytest
from runner_loop import running, wait_until_done

from runtrack import Ledger, RunStatus
from runtrack.runner import Runner
from runtrack.store.listening import QueueListener

YEARLY = "0 0 1 1 *"  # registered, but never due within a test


def started_after_trigger(ledger: Ledger, runner: Runner, job: str) -> float:
    """Seconds from a trigger to its run's start, on a runner idle for 1 s."""
    runner.job(job, provider="acme", cron=YEARLY)(lambda run: None)
    with running(runner):
        time.sleep(1.0)  # idle: the next tick is next year, the next poll 30 s away
        queued = ledger.trigger(job)
        wait_until_done(ledger, [queued.id], seconds=20)
    record = ledger.get_run(queued.id)
    assert record.status is RunStatus.SUCCESS
    assert record.started_at is not None
    return (record.started_at - record.created_at).total_seconds()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_trigger_wakes_a_listening_runner_long_before_its_poll(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=0.2) as ledger:
        runner = Runner(ledger, poll_interval=30, check_every=None, max_sleep=30)
        assert started_after_trigger(ledger, runner, "listen:woken") <= 1.0


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_dropped_listen_connection_is_opened_again(db_url: str) -> None:
    with Ledger(db_url) as ledger:
        listener = QueueListener(ledger.engine)
        assert listener.connected()
        with ledger.engine.begin() as conn:  # the server drops it under the listener
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            )
        assert not listener.notified(0.05)  # said and closed, not raised
        assert not listener.open
        assert listener.connected()  # the next wait opens it again
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("NOTIFY runtrack_queue")
        assert listener.notified(2.0)
        listener.close()


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"], indirect=True)
def test_other_databases_have_no_listener(db_url: str) -> None:
    with Ledger(db_url) as ledger:
        listener = QueueListener(ledger.engine)
        assert not listener.available
        assert not listener.connected()
