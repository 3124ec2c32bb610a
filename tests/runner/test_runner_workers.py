"""Workers you can see (issue 17), with real runner processes on every
database: a runner registers itself and heartbeats its row (also while its
main thread is busy with a long run) and shows what it runs; SIGKILLed, it is
dead once the stale threshold has passed; stopped gracefully, it is stopped.
With a hand-moved clock: re-registration, the ``recent`` window, retention."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from runner_loop import running
from runner_processes import Workers, wait_for_counting_run

from runtrack import Ledger, ManualClock, Run, Runner
from runtrack.workers import KEEP_GONE, WorkerJob, WorkerRecord, WorkerState

STALE = 1.5  # the reading side's stale threshold (seconds)


@pytest.fixture
def watcher(db_url: str) -> Iterator[Ledger]:
    """A ledger that calls a worker dead after STALE seconds without a heartbeat."""
    with Ledger(db_url, heartbeat_interval=0.2, stale_after=STALE) as opened:
        yield opened


def only_worker(ledger: Ledger, pid: int) -> WorkerRecord:
    found = [w for w in ledger.workers() if w.pid == pid]
    assert len(found) == 1, found
    return found[0]


def wait_until(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_runner_registers_heartbeats_and_dies_visibly_when_killed(
    watcher: Ledger, workers: Workers
) -> None:
    process = workers.start(watcher.url, "long", "5")
    running = wait_for_counting_run(watcher, "process:long", workers)

    worker = only_worker(watcher, process.pid)
    assert worker.state is WorkerState.LIVE
    host = socket.gethostname()
    assert (worker.id, worker.host) == (f"{host}:{process.pid}", host)
    assert worker.concurrency == 1 and worker.version and worker.stopped_at is None
    assert worker.jobs == (WorkerJob("process:long", "every 1h", None),)
    assert [r.run_id for r in worker.running] == [running.id]
    assert worker.running[0].job == "process:long"
    assert watcher.get_run(running.id).worker_id == worker.id
    job = watcher.get_job("process:long")
    assert job is not None and job.schedule == "every 1h" and job.schedule_tz is None

    # The job holds the runner's main thread: the worker's own thread beats.
    first = worker.last_seen_at
    wait_until(lambda: only_worker(watcher, process.pid).last_seen_at > first, "a heartbeat")

    process.kill()
    process.wait()
    killed = time.monotonic()
    last = only_worker(watcher, process.pid).last_seen_at
    wait_until(lambda: only_worker(watcher, process.pid).state is WorkerState.DEAD, "dead", 15)
    waited = time.monotonic() - killed
    dead = only_worker(watcher, process.pid)
    assert dead.last_seen_at == last and dead.stopped_at is None
    assert waited <= STALE + 3, f"dead after {waited:.1f} s"
    assert watcher.now() - dead.last_seen_at > timedelta(seconds=STALE)
    # Its run is still 'running' until the reaper ends it: shown on the dead worker.
    assert [r.run_id for r in dead.running] == [running.id]


def test_a_runner_with_slots_is_listed_from_its_first_cycle(db_url: str) -> None:
    """With ``concurrency`` above 1 too: not only once its heartbeat thread
    first wakes, half a heartbeat interval later (30 s here)."""
    with Ledger(db_url, heartbeat_interval=60) as ledger:
        runner = Runner(ledger, concurrency=2, reap_every=None, check_every=None)

        @runner.job("slots:idle", provider="slots", every="1h")
        def idle(run: Run) -> None:
            pass

        with running(runner):
            wait_until(lambda: bool(ledger.workers()), "the worker's row", seconds=10)
        (worker,) = ledger.workers()
        assert (worker.concurrency, worker.state) == (2, WorkerState.STOPPED)
        assert worker.jobs == (WorkerJob("slots:idle", "every 1h", None),)


def test_a_graceful_stop_marks_the_worker_stopped(watcher: Ledger, workers: Workers) -> None:
    process = workers.start(watcher.url, "long", "0.3")
    wait_for_counting_run(watcher, "process:long", workers)
    assert only_worker(watcher, process.pid).state is WorkerState.LIVE

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, workers.log()

    stopped = only_worker(watcher, process.pid)
    assert stopped.state is WorkerState.STOPPED
    assert stopped.stopped_at is not None and stopped.running == ()
    time.sleep(STALE + 0.2)  # stopped stays stopped: never counted dead
    assert only_worker(watcher, process.pid).state is WorkerState.STOPPED


def test_registration_recent_window_and_retention(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    runner = Runner(manual_ledger, worker_id="madrid-1", reap_every=None, check_every=None)

    @runner.job("shop:daily", provider="shop", cron="30 2 * * *", tz="Europe/Madrid")
    def daily(run: Run) -> None:
        pass

    runner.run_once()
    (worker,) = manual_ledger.workers()
    assert (worker.id, worker.pid, worker.state) == ("madrid-1", os.getpid(), WorkerState.LIVE)
    assert worker.jobs == (
        WorkerJob("shop:daily", "cron '30 2 * * *' Europe/Madrid", "Europe/Madrid"),
    )
    assert worker.started_at == worker.last_seen_at == clock.now()
    job = manual_ledger.get_job("shop:daily")
    assert job is not None and job.provider == "shop"

    stale = manual_ledger.stale_after
    clock.advance(stale + timedelta(seconds=1))
    assert manual_ledger.workers()[0].state is WorkerState.DEAD
    assert manual_ledger.worker_seen("madrid-1")  # a heartbeat brings it back
    assert manual_ledger.workers()[0].state is WorkerState.LIVE
    manual_ledger.worker_stopped("madrid-1")
    assert manual_ledger.workers()[0].state is WorkerState.STOPPED

    clock.advance(timedelta(days=2))
    assert manual_ledger.workers() == []  # gone for longer than recent="1d"
    assert [w.id for w in manual_ledger.workers(recent="3d")] == ["madrid-1"]
    assert [w.id for w in manual_ledger.workers(recent=None)] == ["madrid-1"]

    manual_ledger.prune("90d")  # kept: gone for 2 days, KEEP_GONE is 7
    assert len(manual_ledger.workers(recent=None)) == 1
    clock.advance(KEEP_GONE)
    manual_ledger.register_worker("live-1", [], concurrency=4)
    manual_ledger.prune("90d")
    assert [w.id for w in manual_ledger.workers(recent=None)] == ["live-1"]
    assert not manual_ledger.worker_seen("madrid-1")  # pruned...
    time.sleep(manual_ledger.heartbeat_interval)
    runner.run_once()  # ...so the runner's next heartbeat registers it again
    again = {w.id: w for w in manual_ledger.workers()}
    assert set(again) == {"madrid-1", "live-1"}
    assert again["madrid-1"].started_at == clock.now() and again["madrid-1"].jobs
