"""A queue-draining runner module for the process tests (not a test module).

Started as ``runtrack worker queue_worker:runner --concurrency N`` with the
environment: RUNTRACK_DATABASE_URL, QUEUE_LOG (a file each execution appends
its run id to), QUEUE_WORKER (the worker id). Jobs ``drain:00``..``drain:07``
(concurrency 2, providers p0/p1) sleep ``params["sleep"]`` seconds; none is
ever due on its schedule: they only run when queued.
"""

from __future__ import annotations

import logging
import os
import time

from runtrack import Ledger, Run, Runner

JOBS = [f"drain:{n:02d}" for n in range(8)]
LOG = os.environ["QUEUE_LOG"]

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
ledger = Ledger(heartbeat_interval=0.3, stale_after=2.0)
runner = Runner(
    ledger, worker_id=os.environ["QUEUE_WORKER"], reap_every=0.5, poll_interval=0.2, grace=5
)


def drain(run: Run) -> None:
    with open(LOG, "a") as log:  # one line per execution, written at its start
        log.write(f"{run.id}\n")
        log.flush()
    time.sleep(float((run.params or {}).get("sleep", 0.0)))


for n, key in enumerate(JOBS):
    runner.job(key, provider=f"p{n % 2}", cron="0 0 1 1 *", concurrency=2)(drain)
