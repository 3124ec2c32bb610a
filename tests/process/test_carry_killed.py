"""Guarantee 5 with a real process: a run killed with SIGKILL while holding
what its job owes is reaped, and hands every entry back, unresolved and with
no attempt counted, to the next run (a failed run resolves nothing); the
items it recorded as failed before it died are owed too."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from runtrack import Ledger, RunStatus

Spawn = Callable[..., Any]  # conftest.spawn: starts a conftest.Worker
WaitUntil = Callable[..., None]


def test_a_killed_run_hands_its_carried_entries_back(
    db_url: str, spawn: Spawn, wait_until: WaitUntil
) -> None:
    job = "proc:carry"
    with Ledger(db_url, heartbeat_interval=0.05, stale_after=timedelta(seconds=1)) as ledger:
        with ledger.run(job) as first:
            for key in ("a", "b", "c"):
                first.item(key, "error", error="HTTP 500")
            now = ledger.now()
            first.failed_slice(now - timedelta(hours=2), now - timedelta(hours=1), "HTTP 502")
        before = ledger.carried(job)

        worker = spawn("carry", db_url, job)
        items, slices, run_id = (int(part) for part in worker.expect("handed").split())
        assert (items, slices) == (3, 1)
        assert len(ledger.list_items(run_id).items) == 3  # two successes, one failure
        worker.signal(signal.SIGKILL)
        worker.wait()

        wait_until(lambda: ledger.reap() == [run_id], timeout=10)
        reaped = ledger.get_run(run_id)
        assert (reaped.status, reaped.error_type) == (RunStatus.FAILED, "heartbeat_timeout")

        with ledger.run(job) as after:
            handed = after.carried
        assert handed.items[:3] == before.items  # unresolved, attempts unchanged
        assert handed.slices == before.slices
        (fresh,) = handed.items[3:]
        assert (fresh.key, fresh.first_run, fresh.attempts) == ("fresh", run_id, 1)
        assert fresh.last_error == "recorded before the kill"
