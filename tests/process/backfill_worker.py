"""A runner module for the backfill process test (not a test module).

Started as ``runtrack worker backfill_worker:runner`` with the environment:
RUNTRACK_DATABASE_URL, BACKFILL_LOG (a file each backfill window's execution
appends its run id and window start to), BACKFILL_WORKER (the worker id) and,
for the first worker only, BACKFILL_FAIL (day numbers of the range whose
window fails) and BACKFILL_HANG (the day whose window sleeps until killed).
Job ``bf:feed`` ticks every second (its live window) and serves the queue,
two runs at once (``--concurrency 2``): a backfill of it with ``max_parallel=1``
leaves one slot to the live ticks.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime

from runtrack import Ledger, Run, Runner

START = datetime(2026, 1, 1, tzinfo=UTC)
LOG = os.environ["BACKFILL_LOG"]
FAIL = {int(d) for d in os.environ.get("BACKFILL_FAIL", "").split(",") if d}
HANG = int(os.environ.get("BACKFILL_HANG", "-1"))

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
ledger = Ledger(heartbeat_interval=0.3, stale_after=2.0)
runner = Runner(
    ledger, worker_id=os.environ["BACKFILL_WORKER"], reap_every=0.5, poll_interval=0.2, grace=5
)


@runner.job("bf:feed", provider="feed", every="1s", concurrency=2)
def feed(run: Run) -> None:
    start = run.window.start
    if start is None or start >= START.replace(month=6):  # a live tick
        run.count("live")
        return
    day = (start - START).days
    with open(LOG, "a") as log:  # one line per window execution, at its start
        log.write(f"{run.id} {day}\n")
    if day == HANG:
        time.sleep(600)  # until SIGKILL
    time.sleep(0.05)
    if day in FAIL:
        raise RuntimeError(f"day {day} failed")
    run.count("rows", day)
