"""Guarantee 3 with real processes: a killed worker's run is reaped with the
counters of its last heartbeat, a frozen worker that wakes up after being
reaped is fenced off, and a healthy run is never reaped however long it blocks."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from runtrack import Ledger, RunStatus

Spawn = Callable[..., Any]  # conftest.spawn: starts a conftest.Worker
WaitUntil = Callable[..., None]


def item_count(ledger: Ledger, run_id: int) -> int:
    total, cursor = 0, None
    while True:
        page = ledger.list_items(run_id, limit=1000, cursor=cursor)
        total += len(page.items)
        if page.next_cursor is None:
            return total
        cursor = page.next_cursor


def wait_past_threshold(ledger: Ledger, since: object, threshold: timedelta) -> None:
    assert since is not None
    while ledger.now() <= since + threshold:  # type: ignore[operator]
        time.sleep(0.02)


def test_sigkilled_worker_is_reaped_with_its_last_heartbeat(
    db_url: str, spawn: Spawn, wait_until: WaitUntil
) -> None:
    threshold = timedelta(seconds=1)
    with Ledger(db_url, heartbeat_interval=0.05, stale_after=threshold) as reaper:
        worker = spawn("loop", db_url, "proc:kill")
        run_id = int(worker.expect("started"))
        wait_until(lambda: reaper.get_run(run_id).counters.get("ticks", 0) >= 20)
        worker.signal(signal.SIGKILL)
        worker.wait()
        last = reaper.get_run(run_id)  # what its last heartbeat wrote
        items = item_count(reaper, run_id)
        assert last.status is RunStatus.RUNNING
        assert reaper.reap() == []  # not yet past the threshold

        wait_past_threshold(reaper, last.heartbeat_at, threshold)
        assert reaper.reap() == [run_id]
        reaped = reaper.get_run(run_id)
        assert reaped.status is RunStatus.FAILED
        assert reaped.error_type == "heartbeat_timeout"
        assert reaped.counters == last.counters
        assert reaped.heartbeat_at == last.heartbeat_at
        assert reaped.finished_at is not None
        assert item_count(reaper, run_id) == items > 0
        assert reaper.reap() == []  # finalized once

        with reaper.run("proc:kill") as again:  # the lease is free at once
            again.count("ok")
        assert reaper.get_run(again.id).status is RunStatus.SUCCESS


def test_start_reaps_the_stale_lease_of_a_killed_worker(
    db_url: str, spawn: Spawn, reaper: Ledger
) -> None:
    worker = spawn("loop", db_url, "proc:takeover")
    run_id = int(worker.expect("started"))
    worker.signal(signal.SIGKILL)
    worker.wait()
    wait_past_threshold(reaper, reaper.get_run(run_id).heartbeat_at, reaper.stale_after)
    with reaper.run("proc:takeover") as run:  # no reap() call: the start does it
        pass
    assert reaper.get_run(run_id).status is RunStatus.FAILED
    assert reaper.get_run(run_id).error_type == "heartbeat_timeout"
    assert reaper.get_run(run.id).status is RunStatus.SUCCESS


def test_frozen_worker_reaped_then_resumed_is_fenced(
    db_url: str, spawn: Spawn, reaper: Ledger, wait_until: WaitUntil
) -> None:
    worker = spawn("loop", db_url, "proc:frozen")
    run_id = int(worker.expect("started"))
    wait_until(lambda: item_count(reaper, run_id) >= 10)
    worker.signal(signal.SIGSTOP)
    frozen = reaper.get_run(run_id)
    wait_past_threshold(reaper, frozen.heartbeat_at, reaper.stale_after)
    assert reaper.reap() == [run_id]
    after_reap = reaper.get_run(run_id)
    items = item_count(reaper, run_id)
    job = reaper.get_job("proc:frozen")

    worker.signal(signal.SIGCONT)
    worker.expect("lease_lost")
    assert worker.expect("refused") == "4"  # count, item, checkpoint, finish
    assert worker.wait() == 3
    assert reaper.get_run(run_id) == after_reap  # every column as the reaper left it
    assert after_reap.status is RunStatus.FAILED
    assert after_reap.error_type == "heartbeat_timeout"
    assert item_count(reaper, run_id) == items
    assert reaper.get_job("proc:frozen") == job


def reap_until_exit(reaper: Ledger, worker: Any, run_id: int) -> int:
    """Sweep every 20 ms while the worker lives; the run must never be reaped."""
    sweeps = 0
    while worker.proc.poll() is None:
        assert run_id not in reaper.reap()
        sweeps += 1
        time.sleep(0.02)
    return sweeps


def test_healthy_run_blocking_for_20_thresholds_is_never_reaped(
    db_url: str, spawn: Spawn, reaper: Ledger
) -> None:
    worker = spawn("sleep", db_url, "proc:healthy", "6,0")  # time.sleep(6) in the main thread
    run_id = int(worker.expect("started"))
    began = time.monotonic()
    sweeps = reap_until_exit(reaper, worker, run_id)
    elapsed = time.monotonic() - began
    assert worker.proc.returncode == 0, worker.stderr()
    record = reaper.get_run(run_id)
    assert record.status is RunStatus.SUCCESS
    assert record.counters == {"before": 1, "after": 1}
    assert elapsed >= 20 * reaper.stale_after.total_seconds()
    assert sweeps >= 100


def test_healthy_run_hogging_the_gil_keeps_its_heartbeat(db_url: str, spawn: Spawn) -> None:
    # A pure-Python busy loop in the main thread hands the GIL to the heartbeat
    # thread only every switch interval (5 ms), so each of a tick's round trips
    # can wait that long: the threshold here is 20 intervals, not 6.
    with Ledger(db_url, heartbeat_interval=0.05, stale_after=1.0) as reaper:
        worker = spawn("sleep", db_url, "proc:busy", "0,3")
        run_id = int(worker.expect("started"))
        reap_until_exit(reaper, worker, run_id)
        assert worker.proc.returncode == 0, worker.stderr()
        assert reaper.get_run(run_id).status is RunStatus.SUCCESS


def test_abandoned_run_does_not_hold_the_interpreter(
    db_url: str, spawn: Spawn, reaper: Ledger
) -> None:
    worker = spawn("abandon", db_url, "proc:abandon")
    run_id = int(worker.expect("started"))
    assert worker.wait(timeout=10) == 0
    assert worker.stderr() == ""  # the heartbeat thread stopped without a trace
    stopped = reaper.get_run(run_id)
    assert stopped.status is RunStatus.RUNNING  # left for the reaper
    wait_past_threshold(reaper, stopped.heartbeat_at, reaper.stale_after)
    assert reaper.reap() == [run_id]


def test_forked_child_heartbeats_its_own_runs(db_url: str, spawn: Spawn, reaper: Ledger) -> None:
    worker = spawn("fork", db_url, "proc:fork")
    worker.expect("started")
    child_run = int(worker.expect("child"))
    worker.expect("child_done")
    assert worker.expect("parent_done") == "0"
    assert worker.wait() == 0, worker.stderr()
    record = reaper.get_run(child_run)
    assert record.status is RunStatus.SUCCESS
    assert record.started_at is not None and record.heartbeat_at is not None
    assert record.heartbeat_at > record.started_at  # the child's own thread beat
