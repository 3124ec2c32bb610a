"""A runner as a worker others can see (issue 17).

The runner registers itself on its first cycle (with the jobs it serves and
their schedules) and heartbeats its row at the ledger's heartbeat interval:
from its cycles, and, while :meth:`Runner.run_forever` runs, from a daemon
thread too, so a worker busy with a long run is not taken for dead. A graceful
stop marks the row stopped; a killed worker stops heartbeating and is dead once
``stale_after`` has passed, as its runs are reaped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from runtrack.errors import RuntrackError
from runtrack.ledger import Ledger
from runtrack.runner.registry import JobSpec
from runtrack.runner.schedule import Cron
from runtrack.workers import WorkerJob

__all__ = ["Presence"]

log = logging.getLogger("runtrack.runner")


class Presence:
    """The worker row of one runner."""

    def __init__(self, ledger: Ledger, jobs: Iterable[JobSpec], concurrency: int = 1) -> None:
        self.ledger = ledger
        self._jobs = jobs  # the registry: read when registering, after every @job
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self._registered = False
        self._beaten = 0.0  # time.monotonic() of the last write

    def beat(self) -> None:
        """Register on the first call (and again if the row was pruned), then
        heartbeat at most once per heartbeat interval."""
        with self._lock:
            now = time.monotonic()
            if self._registered and now - self._beaten < self.ledger.heartbeat_interval:
                return
            if not self._registered or not self.ledger.worker_seen(self.ledger.worker_id):
                self._register()
            self._beaten = now

    def _register(self) -> None:
        specs = list(self._jobs)
        served = [WorkerJob(s.key, s.schedule.describe(), _zone(s)) for s in specs]
        self.ledger.register_worker(
            self.ledger.worker_id,
            served,
            concurrency=self.concurrency,
            providers={s.key: s.provider for s in specs},
        )
        self._registered = True
        log.info("worker %s registered: %d job(s)", self.ledger.worker_id, len(specs))

    @contextmanager
    def alive(self) -> Iterator[None]:
        """Heartbeat from a thread while the block runs; mark the worker
        stopped when it ends."""
        done = threading.Event()
        thread = threading.Thread(
            target=self._beat_until, args=(done,), name="runtrack-worker", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self._stopped()

    def _beat_until(self, done: threading.Event) -> None:
        while not done.wait(self.ledger.heartbeat_interval / 2):
            try:
                self.beat()
            except RuntrackError as exc:  # an outage: the next beat tries again
                log.warning("worker heartbeat failed: %s", exc)
            except Exception:  # a bug here must not end the worker's heartbeats
                log.exception("worker heartbeat failed unexpectedly")

    def _stopped(self) -> None:
        with self._lock:
            if not self._registered:
                return
            try:
                self.ledger.worker_stopped(self.ledger.worker_id)
            except RuntrackError as exc:  # it will show as dead instead
                log.warning("could not mark worker %s stopped: %s", self.ledger.worker_id, exc)


def _zone(spec: JobSpec) -> str | None:
    schedule = spec.schedule
    return schedule.tz if isinstance(schedule, Cron) and schedule.zone is not None else None
