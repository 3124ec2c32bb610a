"""Four runner processes share one database and twenty jobs: over several
ticks every due job runs exactly once per tick (none twice, none missed).
The database is the only coordinator."""

from __future__ import annotations

import itertools
import signal
import time
from collections import defaultdict
from datetime import datetime, timedelta

from runner_processes import Workers

from runtrack import Ledger, RunRecord, RunStatus

PROCESSES = 4
JOBS = 20
EVERY = timedelta(seconds=2)  # worker_app.FLEET_EVERY
WATCH = 6.0  # seconds of ticks after every process is up


def wait_until_started(workers: Workers) -> None:
    deadline = time.monotonic() + 60
    while sum("started: 20 job(s)" in workers.log(n) for n in range(PROCESSES)) < PROCESSES:
        assert time.monotonic() < deadline, workers.all_logs()
        time.sleep(0.1)


def lateness(runs: list[RunRecord]) -> str:
    """How long after its tick each run started (for a failure message)."""
    late = sorted(
        (run.created_at - datetime.fromisoformat(run.notes[0])).total_seconds() for run in runs
    )
    return f"median {late[len(late) // 2]:.2f} s, max {late[-1]:.2f} s over {len(late)} runs"


def test_every_tick_runs_once_across_four_processes(ledger: Ledger, workers: Workers) -> None:
    processes = [workers.start(ledger.url, "fleet", f"fleet-{n}") for n in range(PROCESSES)]
    wait_until_started(workers)
    time.sleep(WATCH)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    assert [p.wait(timeout=30) for p in processes] == [0] * PROCESSES, workers.all_logs()

    runs = ledger.list_runs(limit=1000).items
    ticks: dict[str, list[datetime]] = defaultdict(list)
    for run in runs:
        assert run.status is RunStatus.SUCCESS, run
        ticks[run.job].append(datetime.fromisoformat(run.notes[0]))
    assert len(ticks) == JOBS
    for job, seen in ticks.items():
        seen.sort()
        assert len(seen) == len(set(seen)), f"{job} ran a tick twice: {seen}"
        gaps = {later - earlier for earlier, later in itertools.pairwise(seen)}
        assert gaps == {EVERY}, f"{job} missed a tick: {seen}; lateness: {lateness(runs)}"
        assert len(seen) >= WATCH // EVERY.total_seconds()
    assert len({run.worker_id for run in runs}) >= 2  # the work was shared
    assert not ledger.active_runs()
