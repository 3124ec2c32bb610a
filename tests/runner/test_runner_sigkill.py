"""A runner process killed with SIGKILL mid-run leaves a running run behind;
another runner's built-in maintenance reaps it (failed, heartbeat_timeout)
with the counters of its last heartbeat."""

from __future__ import annotations

import time

from runner_processes import Workers, wait_for_counting_run

from runtrack import Ledger, Runner, RunStatus


def test_after_sigkill_another_runners_maintenance_reaps_the_run(
    db_url: str, workers: Workers
) -> None:
    with Ledger(db_url, heartbeat_interval=0.05, stale_after=1.0) as ledger:
        process = workers.start(db_url, "long", "30")
        running = wait_for_counting_run(ledger, "process:long", workers)
        process.kill()
        process.wait()
        killed = time.monotonic()

        survivor = Runner(ledger, reap_every=0.2, prune_every=None)
        while ledger.get_run(running.id).status is RunStatus.RUNNING:
            assert time.monotonic() - killed < 10, "the dead run was never reaped"
            survivor.run_once()
            time.sleep(0.1)
        record = ledger.get_run(running.id)
        assert (record.status, record.error_type) == (RunStatus.FAILED, "heartbeat_timeout")
        assert record.counters["pages"] >= running.counters["pages"] > 0
        last = ledger.last_maintenance("reap")
        assert last is not None and last[1]["reaped"] >= 1
