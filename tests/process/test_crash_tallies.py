"""A run that ends without its owner (a killed or frozen worker) still reports
item tallies that agree with its stored item rows: on the run (per status,
groups found and missing) and in its job's tallies. The owner computes them in
memory, so every path that ends a run without it must count the rows."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from runtrack import Ledger, RunRecord, RunStatus

Spawn = Callable[..., Any]  # conftest.spawn: starts a conftest.Worker

# What the worker's "items" mode records (see worker.ITEMS).
EXPECTED = {"success": 4, "not_found": 3, "skipped": 0, "error": 0}


def stored_tallies(ledger: Ledger, run_id: int) -> tuple[dict[str, int], int | None, int | None]:
    """Tallies, groups found and groups missing, counted from the stored rows."""
    items = ledger.list_items(run_id, limit=1000).items
    counts = Counter(item.status.value for item in items)
    seen = {item.group for item in items if item.group is not None}
    found = {item.group for item in items if item.group is not None and item.status == "success"}
    tallies = {status: counts.get(status, 0) for status in EXPECTED}
    return tallies, (len(found) if seen else None), (len(seen - found) if seen else None)


def assert_tallies_agree(ledger: Ledger, record: RunRecord) -> None:
    assert stored_tallies(ledger, record.id) == (EXPECTED, 2, 1)  # the worker's 7 items
    assert record.items == EXPECTED
    assert (record.groups_found, record.groups_missing) == (2, 1)
    tally = next(t for t in ledger.job_tallies() if t.job == record.job)
    assert tally.status is record.status
    assert tally.items == EXPECTED


def kill_after_items(spawn: Spawn, db_url: str, job: str) -> int:
    worker = spawn("items", db_url, job)
    run_id = int(worker.expect("recorded"))
    worker.signal(signal.SIGKILL)
    worker.wait()
    return run_id


def wait_until_stale(ledger: Ledger, run_id: int) -> None:
    since = ledger.get_run(run_id).heartbeat_at
    assert since is not None
    while ledger.now() <= since + ledger.stale_after:
        time.sleep(0.02)


def test_reaped_run_counts_its_stored_items(db_url: str, spawn: Spawn, reaper: Ledger) -> None:
    run_id = kill_after_items(spawn, db_url, "crash:reaped")
    wait_until_stale(reaper, run_id)
    assert reaper.reap() == [run_id]
    record = reaper.get_run(run_id)
    assert record.status is RunStatus.FAILED
    assert_tallies_agree(reaper, record)


def test_run_reaped_by_a_new_start_counts_its_stored_items(
    db_url: str, spawn: Spawn, reaper: Ledger
) -> None:
    run_id = kill_after_items(spawn, db_url, "crash:takeover")
    wait_until_stale(reaper, run_id)
    with reaper.run("crash:takeover"):  # reaps the dead holder first
        pass
    assert_tallies_agree(reaper, reaper.get_run(run_id))


def test_reaped_run_with_a_cancel_pending_counts_its_stored_items(
    db_url: str, spawn: Spawn, reaper: Ledger
) -> None:
    worker = spawn("items", db_url, "crash:cancel")
    run_id = int(worker.expect("recorded"))
    worker.signal(signal.SIGSTOP)  # it cannot see the cancel
    reaper.cancel(run_id, reason="operator")
    wait_until_stale(reaper, run_id)
    assert reaper.reap() == [run_id]
    record = reaper.get_run(run_id)
    assert record.status is RunStatus.CANCELLED
    assert_tallies_agree(reaper, record)


def test_frozen_worker_that_lost_its_run_leaves_the_reaper_tallies(
    db_url: str, spawn: Spawn, reaper: Ledger
) -> None:
    worker = spawn("items", db_url, "crash:frozen")
    run_id = int(worker.expect("recorded"))
    worker.signal(signal.SIGSTOP)
    wait_until_stale(reaper, run_id)
    assert reaper.reap() == [run_id]
    worker.signal(signal.SIGCONT)
    worker.expect("lease_lost")
    assert worker.wait() == 3
    assert_tallies_agree(reaper, reaper.get_run(run_id))


def test_run_finished_by_id_from_another_process_counts_its_stored_items(
    db_url: str, spawn: Spawn, reaper: Ledger
) -> None:
    worker = spawn("items", db_url, "crash:by-id")
    run_id = int(worker.expect("recorded"))
    worker.signal(signal.SIGSTOP)
    record = reaper.finish_run(run_id, "failed", error="worker wedged; ended by an operator")
    assert_tallies_agree(reaper, record)
