"""The runner the queue section starts in its worker processes (not a
section): ``runtrack worker bench.queue_worker:runner --concurrency N``.

The environment gives RUNTRACK_DATABASE_URL, BENCH_QUEUE_JOBS (how many jobs
``bench:queue:NN``, each of concurrency BENCH_QUEUE_SLOTS) and
BENCH_QUEUE_POLL (the runner's ``poll_interval``). The jobs do nothing and are
never due on their schedule (once a year): they run only when queued.
"""

from __future__ import annotations

import os

from bench.queueing import job_keys
from runtrack import Ledger, Run, Runner

__all__ = ["runner"]


def noop(run: Run) -> None:
    """A no-op job: what is measured is the queue, not the work."""


# Runs last a millisecond: no need to heartbeat them more than once a second.
ledger = Ledger(heartbeat_interval=1.0)
runner = Runner(
    ledger,
    poll_interval=float(os.environ.get("BENCH_QUEUE_POLL", "1.0")),
    reap_every=None,
    prune_every=None,
    check_every=None,
    grace=5,
)
for key in job_keys(int(os.environ.get("BENCH_QUEUE_JOBS", "8"))):
    slots = int(os.environ.get("BENCH_QUEUE_SLOTS", "4"))
    runner.job(key, provider="bench", cron="0 0 1 1 *", concurrency=slots)(noop)
