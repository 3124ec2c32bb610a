"""Crashes: worker processes doing real runs are SIGKILLed at random points
(starting, counting, flushing items, finalizing, between runs). After one
reap no run is left active, nothing a worker committed is lost or rewritten,
and every run's counters are at least those its last heartbeat wrote."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from reliability_support import Figures, Sizes, Worker, all_runs, item_counts
from reliability_workers import HEARTBEAT

from runtrack import Ledger

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("timed")]

#: Workers reap each other's dead runs after this; so does the final reap.
STALE = 0.6
#: A worker that has not started a run after this long is killed anyway.
NEVER_STARTED = 10.0


class Crew:
    """Crash workers alive at once. Each is killed at a random moment after
    it started its first run: starting, counting, flushing items, finalizing
    or between two runs (a worker that never gets a run is killed too)."""

    def __init__(self, spawn: Callable[..., Worker], url: str, jobs: list[str], seed: int) -> None:
        self.spawn_worker = spawn
        self.url = url
        self.jobs = jobs
        self.rng = random.Random(seed)
        self.alive: dict[Worker, float] = {}  # worker -> when to kill it
        self.waiting: set[Worker] = set()  # alive, no run started yet
        self.spawned = self.kills = 0
        self.events: list[tuple[str, int, str]] = []

    def spawn(self) -> None:
        seed = self.rng.randrange(1 << 30)
        worker = self.spawn_worker("crash", self.url, self.jobs, seed, STALE)
        self.alive[worker] = time.monotonic() + NEVER_STARTED
        self.waiting.add(worker)
        self.spawned += 1

    def kill_due(self) -> None:
        now = time.monotonic()
        for worker in list(self.alive):
            new = worker.poll()
            if worker in self.waiting and any(line.startswith("started") for line in new):
                self.waiting.discard(worker)
                self.alive[worker] = now + self.rng.uniform(0.0, 0.4)
            if self.alive[worker] <= now:
                worker.kill()
                self.kills += 1
                del self.alive[worker]

    def collect(self, workers: list[Worker]) -> None:
        for worker in workers:
            for line in worker.lines:
                word, run_id, *rest = line.split()
                self.events.append((word, int(run_id), rest[0] if rest else ""))


def test_sigkilled_workers_leave_no_run_behind(
    db_url: str, backend: str, sizes: Sizes, figures: Figures, spawn: Callable[..., Worker]
) -> None:
    seed = random.randrange(1 << 30)
    started: list[Worker] = []

    def spawn_tracked(*args: object) -> Worker:
        started.append(spawn(*args))
        return started[-1]

    crew = Crew(spawn_tracked, db_url, [f"crash:{i}" for i in range(sizes.crash_workers + 2)], seed)
    while crew.kills < sizes.kills:
        while len(crew.alive) < sizes.crash_workers and crew.spawned < sizes.kills:
            crew.spawn()
        crew.kill_due()
        time.sleep(0.01)
    crew.collect(started)

    time.sleep(STALE + 2 * HEARTBEAT)  # every run left behind is now stale
    before = {row.id: row for row in all_runs(db_url)}
    with Ledger(db_url, heartbeat_interval=HEARTBEAT, stale_after=STALE) as reaper:
        reaped = reaper.reap()
    after = {row.id: row for row in all_runs(db_url)}
    items = item_counts(db_url)

    started = {run_id for word, run_id, _ in crew.events if word == "started"}
    finished = {run_id: status for word, run_id, status in crew.events if word == "finished"}
    left_active = {i for i, row in before.items() if row.status in ("pending", "running")}
    stuck = [i for i, row in after.items() if row.status in ("pending", "running")]
    lost = started - set(after)
    rewritten = [i for i, status in finished.items() if after[i].status != status]
    dropped = [
        i
        for i, row in after.items()
        if row.status == "success"
        and not (row.counters.get("n", 0) == row.items_success == items.get(i, 0))
    ]
    shrunk = [
        i
        for i in left_active
        if any(after[i].counters.get(k, 0) < v for k, v in before[i].counters.items())
    ]
    figures.add(
        "crashes",
        backend,
        kills=crew.kills,
        runs=len(after),
        finished_by_workers=len(finished),
        reaped_by_workers=sum(1 for i, r in before.items() if r.error_type == "heartbeat_timeout"),
        reaped_at_end=len(reaped),
        items=sum(items.values()),
        lost=len(lost),
        stuck=len(stuck),
        rewritten=len(rewritten),
        counters_dropped=len(dropped) + len(shrunk),
    )
    context = f"seed {seed}"
    assert crew.kills >= sizes.kills
    assert not stuck, f"runs still active after one reap: {stuck} ({context})"
    assert set(reaped) == left_active, context
    assert not lost, f"runs a worker started are gone: {sorted(lost)} ({context})"
    assert not rewritten, f"terminal runs changed afterwards: {rewritten} ({context})"
    assert not dropped, f"success runs whose counters/items disagree: {dropped} ({context})"
    assert not shrunk, f"counters lower than the last heartbeat's: {shrunk} ({context})"
    assert all(after[i].error_type == "heartbeat_timeout" for i in reaped), context
