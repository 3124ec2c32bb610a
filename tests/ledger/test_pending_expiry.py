"""Issue 17: a pending run expires after the pending TTL only when no live
worker serves its job (listed in the row of a worker that is live as the
Workers page says). A busy live worker keeps its queued runs waiting, and once
it is stopped or dead they expire; its heartbeats write no job row. With a
hand-moved clock, on every database."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from runtrack import Ledger, ManualClock, Run, Runner, RunStatus
from runtrack.workers import WorkerJob, WorkerState

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
STALE = timedelta(seconds=60)  # the ledger's stale threshold: a live worker's
TTL = timedelta(hours=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def queue(db_url: str, clock: ManualClock) -> Iterator[Ledger]:
    with Ledger(
        db_url, clock=clock, heartbeat_interval=15, stale_after=STALE, pending_ttl=TTL
    ) as ledger:
        for key in ("q:served", "q:alone"):
            ledger.ensure_job(key)
        yield ledger


def serve(ledger: Ledger, worker_id: str, *keys: str) -> None:
    ledger.register_worker(worker_id, [WorkerJob(key, "every 1h") for key in keys])


def past_the_ttl(ledger: Ledger, clock: ManualClock, *alive: str) -> None:
    """Move past the pending TTL, the ``alive`` workers heartbeating on the way."""
    for _ in range(int(TTL / timedelta(seconds=15)) + 1):
        clock.advance(15)
        for worker_id in alive:
            assert ledger.worker_seen(worker_id)


def expired(ledger: Ledger, run_id: int) -> bool:
    record = ledger.get_run(run_id)
    return (record.status, record.error_type) == (RunStatus.CANCELLED, "expired")


def test_a_busy_live_worker_keeps_its_jobs_queued_runs_from_expiring(
    queue: Ledger, clock: ManualClock
) -> None:
    serve(queue, "w1", "q:served")
    waiting = queue.trigger("q:served")
    unserved = queue.trigger("q:alone")
    past_the_ttl(queue, clock, "w1")
    assert queue.reap() == [unserved.id]  # no worker serves it: expires as before
    assert expired(queue, unserved.id)
    assert queue.get_run(waiting.id).status is RunStatus.PENDING
    # It waits for the worker, however long the worker stays live and busy.
    past_the_ttl(queue, clock, "w1")
    assert queue.reap() == []
    claimed = queue.claim({"q:served": 1})  # its worker is free at last
    assert claimed is not None and claimed.id == waiting.id
    queue.finish_run(claimed)


def test_the_queued_run_expires_once_its_worker_is_dead(queue: Ledger, clock: ManualClock) -> None:
    serve(queue, "w1", "q:served")
    waiting = queue.trigger("q:served")
    past_the_ttl(queue, clock, "w1")
    assert queue.reap() == []
    # The worker stops heartbeating (killed): live until the stale threshold.
    clock.advance(STALE)
    assert queue.workers()[0].state is WorkerState.LIVE
    assert queue.reap() == []
    clock.advance(timedelta(seconds=1))
    assert queue.workers()[0].state is WorkerState.DEAD
    assert queue.reap() == [waiting.id]
    assert expired(queue, waiting.id)


def test_the_queued_run_expires_once_its_worker_stopped(queue: Ledger, clock: ManualClock) -> None:
    serve(queue, "w1", "q:served")
    waiting = queue.trigger("q:served")
    past_the_ttl(queue, clock, "w1")
    assert queue.reap() == []
    queue.worker_stopped("w1")
    assert queue.workers()[0].state is WorkerState.STOPPED
    assert queue.reap() == [waiting.id]
    assert expired(queue, waiting.id)


def test_a_job_stays_served_while_any_of_its_workers_lives(
    queue: Ledger, clock: ManualClock
) -> None:
    serve(queue, "w1", "q:served")
    serve(queue, "w2", "q:served", "q:alone")
    waiting = queue.trigger("q:served")
    other = queue.trigger("q:alone")
    past_the_ttl(queue, clock, "w1", "w2")
    queue.worker_stopped("w2")  # w1 still serves q:served; nobody q:alone
    assert queue.reap() == [other.id]
    clock.advance(STALE / 2)
    assert queue.worker_seen("w1")
    queue.worker_stopped("w1")
    assert queue.reap() == [waiting.id]


def test_a_worker_that_stopped_serving_a_job_no_longer_holds_its_runs(
    queue: Ledger, clock: ManualClock
) -> None:
    serve(queue, "w1", "q:served", "q:alone")
    waiting = queue.trigger("q:served")
    past_the_ttl(queue, clock, "w1")
    assert queue.reap() == []
    serve(queue, "w1", "q:alone")  # restarted without the job
    assert queue.reap() == [waiting.id]


def test_a_stopped_worker_that_heartbeats_again_serves_again(
    queue: Ledger, clock: ManualClock
) -> None:
    serve(queue, "w1", "q:served")
    waiting = queue.trigger("q:served")
    queue.worker_stopped("w1")
    clock.advance(TTL - timedelta(seconds=1))
    assert queue.worker_seen("w1")  # back (its stop was not the end)
    clock.advance(timedelta(seconds=2))
    assert queue.reap() == []
    assert queue.get_run(waiting.id).status is RunStatus.PENDING


def test_a_runner_keeps_serving_its_paused_jobs_queue_until_it_is_gone(
    db_url: str, clock: ManualClock
) -> None:
    """End to end: a runner's registration and heartbeats (from its cycles)
    mark its job served; its provider paused, it claims nothing, and the
    queued run outlives the TTL (its own reaps included); once it is gone,
    the run expires."""
    with Ledger(
        db_url, clock=clock, heartbeat_interval=0.05, stale_after=STALE, pending_ttl="10m"
    ) as ledger:
        runner = Runner(ledger, worker_id="runner-1", check_every=None, prune_every=None)

        @runner.job("q:paused", provider="slow", every="1d")
        def paused(run: Run) -> None:
            pass

        runner.run_once()  # registers, runs today's tick
        ledger.pause("slow", for_="1d", reason="429")
        waiting = ledger.trigger("q:paused")
        for _ in range(25):  # 12.5 minutes, a cycle (and a reap) every 30 s
            clock.advance(30)
            time.sleep(0.06)  # past the heartbeat interval: the cycle beats
            runner.run_once()
        assert ledger.get_run(waiting.id).status is RunStatus.PENDING
        clock.advance(STALE + timedelta(seconds=1))  # the runner stopped cycling
        assert ledger.reap() == [waiting.id]
        assert expired(ledger, waiting.id)


def statements_on(ledger: Ledger, pattern: str) -> list[str]:
    """Collects the statements ``ledger`` sends that match ``pattern`` (until
    the test ends: the ledger is closed with it)."""
    matching = re.compile(pattern, re.IGNORECASE)
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if matching.search(statement):
            sent.append(statement)

    event.listen(ledger.engine, "before_cursor_execute", seen)
    return sent


def test_a_workers_heartbeats_write_no_job_row(queue: Ledger, clock: ManualClock) -> None:
    """Heartbeats of every worker writing their jobs' rows raced the
    finishes, claims and reaps that lock those rows (deadlocks on
    PostgreSQL): a heartbeat writes the worker's own row only."""
    serve(queue, "w1", "q:served", "q:alone")
    serve(queue, "w2", "q:served")
    writes = statements_on(queue, r"^\s*(UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+[`\"]?jobs\b")
    for _ in range(5):
        clock.advance(15)
        assert queue.worker_seen("w1")
        assert queue.worker_seen("w2")
    queue.worker_stopped("w2")
    assert writes == []


def test_a_reap_reads_the_workers_only_when_runs_are_past_the_ttl(
    queue: Ledger, clock: ManualClock
) -> None:
    serve(queue, "w1", "q:served")
    queue.trigger("q:served")
    unserved = queue.trigger("q:alone")
    reads = statements_on(queue, r"\bFROM\s+[`\"]?workers\b")
    assert queue.reap() == []  # nothing past the TTL: the worker rows are not read
    assert reads == []
    past_the_ttl(queue, clock, "w1")
    assert queue.reap() == [unserved.id]
    assert len(reads) == 1
