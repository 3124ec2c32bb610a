"""The runner the queue's browser test starts as a real process (not a test
module): ``runtrack worker browser_queue_worker:runner`` with
RUNTRACK_DATABASE_URL set. Job ``web:search`` never falls due on its
schedule: it runs what the dashboard queues (Run now, Backfill)."""

from __future__ import annotations

import logging

from runtrack import Ledger, Run, Runner

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
ledger = Ledger(heartbeat_interval=0.3, stale_after=5.0)
runner = Runner(ledger, worker_id="browser-worker", poll_interval=0.2, check_every=None)


@runner.job("web:search", provider="web", cron="0 0 1 1 *")
def search(run: Run) -> None:
    params = run.params or {}
    run.count("pages", int(params.get("pages", 1)))
    run.count("offers", 10 * int(params.get("pages", 1)))
