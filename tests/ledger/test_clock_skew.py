"""Guarantees 3 and 4 across machines whose clocks disagree: a worker whose
wall clock is five minutes off writes and compares the database's time, so it
is neither reaped while healthy nor reaps the healthy runs of others. (The
local clock is skewed by injection while the database keeps true time.)"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from runtrack import DatabaseClock, LeaseLost, Ledger, OffsetClock, RunStatus, SystemClock

SKEW = timedelta(minutes=5)
INTERVAL = 0.05
# Far below the skew, so a clock misread still reaps, and far above any stall
# of a heartbeat thread on a loaded two-core CI machine (0.3 s was not).
STALE = 5.0
SWEEPING = 2.0


def skewed(db_url: str, skew: timedelta, **options: Any) -> Ledger:
    """A ledger on a machine whose wall clock is ``skew`` off: its default
    database clock, built on that wall clock."""
    holder: list[Ledger] = []
    clock = DatabaseClock(
        lambda: holder[0].store.tx.server_now(), wall=OffsetClock(SystemClock(), skew)
    )
    ledger = Ledger(db_url, clock=clock, migrate=False, **options)
    holder.append(ledger)
    return ledger


def keep_running(ledger: Ledger, job: str, stop: threading.Event, out: dict[str, Any]) -> None:
    with ledger.run(job) as run:
        out[job] = run
        while not stop.is_set():
            run.count("pages")
            time.sleep(0.01)


def test_skewed_workers_neither_get_reaped_nor_reap_others(db_url: str, ledger: Ledger) -> None:
    options = dict(heartbeat_interval=INTERVAL, stale_after=STALE)
    slow = skewed(db_url, -SKEW, **options)  # this machine is five minutes behind
    fast = skewed(db_url, SKEW, **options)  # and this one five minutes ahead
    stop, out = threading.Event(), {}
    threads = [
        threading.Thread(target=keep_running, args=(worker, job, stop, out))
        for worker, job in ((slow, "skew:slow"), (fast, "skew:fast"))
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + SWEEPING
        sweeps = 0
        while time.monotonic() < deadline:  # everyone reaps everyone, again and again
            for reaper in (slow, fast, ledger):
                assert reaper.reap(stale_after=STALE) == []
            sweeps += 1
            time.sleep(INTERVAL)
        assert sweeps >= 10
        assert len(out) == 2
        truth = ledger.now()
        for run in out.values():
            record = ledger.get_run(run.id)
            assert record.status is RunStatus.RUNNING
            # Written in the database's time, not the skewed machine's.
            assert record.heartbeat_at is not None
            assert abs(record.heartbeat_at - truth) < timedelta(seconds=5)
            assert abs(record.started_at - truth) < timedelta(seconds=5)  # type: ignore[operator]
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        slow.close()
        fast.close()
    assert [ledger.get_run(run.id).status for run in out.values()] == [RunStatus.SUCCESS] * 2


def test_a_clock_trusted_blindly_would_reap_healthy_runs(db_url: str, ledger: Ledger) -> None:
    # The hazard the database clock removes, shown once: the same five
    # minutes, but this reaper believes its own wall clock.
    blind = Ledger(
        db_url,
        clock=OffsetClock(SystemClock(), SKEW),
        heartbeat_interval=INTERVAL,
        stale_after=STALE,
    )
    try:
        with pytest.raises(LeaseLost), ledger.run("skew:victim") as run:
            time.sleep(2 * INTERVAL)  # heartbeating, perfectly healthy
            assert blind.reap() == [run.id]
    finally:
        blind.close()
    assert ledger.get_run(run.id).status is RunStatus.FAILED
