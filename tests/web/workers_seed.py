"""Workers for the web tests (issue 17): a live runner that served two jobs
(one on Madrid time) and is running a run, a dead worker and a stopped one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from runtrack import Ledger, ManualClock, Run, Runner, RunStatus
from runtrack.workers import WorkerJob

LIVE, DEAD, STOPPED = "madrid-1", "old-1", "stopped-1"
ZONED, HOURLY = "shop:daily", "board:hourly"


@dataclass(frozen=True)
class SeededWorkers:
    run_id: int  # running on LIVE


def _noop(run: Run) -> None:
    run.count("pages")


@contextmanager
def seed_workers(url: str, now: datetime) -> Iterator[SeededWorkers]:
    """The workers, at the database time ``now``; the live one's run ends on exit."""
    # A heartbeat an hour away: the running run's row stays as started.
    with Ledger(url, clock=ManualClock(now), heartbeat_interval=3600) as worker:
        runner = Runner(worker, worker_id=LIVE, reap_every=None, check_every=None)
        runner.job(ZONED, provider="shop", cron="30 2 * * *", tz="Europe/Madrid")(_noop)
        runner.job(HOURLY, provider="board", every="1h")(_noop)
        runner.run_once()  # registers; the hourly job's first tick runs now
        handle = worker.start_run(HOURLY, provider="board")
        with Ledger(url, clock=ManualClock(now - timedelta(hours=2))) as earlier:
            earlier.register_worker(DEAD, [WorkerJob(HOURLY, "every 1h")])
            earlier.register_worker(STOPPED, [WorkerJob(HOURLY, "every 1h")], concurrency=2)
            earlier.worker_stopped(STOPPED)
        try:
            yield SeededWorkers(handle.id)
        finally:
            worker.finish_run(handle, RunStatus.SUCCESS)
