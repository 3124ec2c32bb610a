"""The queue as a runner sees it (issue 17): claims of pending runs of the
jobs it registered, side-by-side executions, and the wait between cycles.

An idle runner wakes within a second of a trigger: on PostgreSQL it LISTENs
on the queue's channel (a trigger NOTIFYs when it commits); elsewhere, and
as a safety net for a lost notification, it polls every ``poll_interval``
(one range of the queue index). Up to ``concurrency`` attempts run at once,
each supervised by a slot thread of its own (see
:mod:`runtrack.runner.execution`), their outcomes handed back to the
runner's main thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from runtrack.failures import capped, message
from runtrack.ledger import Ledger
from runtrack.runner.execution import Attempt, Outcome, Stopper
from runtrack.runner.registry import JobSpec, Registry
from runtrack.runner.retrying import budget_used
from runtrack.runner.threads import JobThread
from runtrack.store.listening import QueueListener

__all__ = ["Feed", "Pool", "pause_provider"]

log = logging.getLogger("runtrack.runner")
#: Runs an attempt in the job thread given, under the caller's supervision.
Execute = Callable[[Attempt, JobThread], Outcome]
_Work = tuple[Attempt, Execute]
SLICE = 0.05  # seconds between the checks of a wait


class Feed:
    """Claims queued runs of a runner's jobs and waits for new ones."""

    def __init__(self, ledger: Ledger, registry: Registry, poll_interval: float) -> None:
        self._ledger = ledger
        self._registry = registry
        self.poll_interval = poll_interval
        self._listener = QueueListener(ledger.engine)

    def claim(self, paused: Collection[str]) -> Attempt | None:
        """Claim the next queued run this runner serves (``None``: none now)."""
        served = {spec.key: spec.concurrency for spec in self._registry}
        run = self._ledger.claim(served, paused=sorted(paused))
        if run is None:
            return None
        spec = self._registry[run.job]
        used = budget_used(self._ledger, run)
        return Attempt(
            spec, due=run.started_at, tick=None, attempt=run.attempt, used=used, queued=run
        )

    # -- waiting -----------------------------------------------------------------------

    def wait(self, seconds: float, stopper: Stopper, woken: threading.Event) -> None:
        """Sleep ``seconds`` (at most ``poll_interval``), or until a stop is
        requested, an execution ends (``woken``) or a run is queued."""
        end = time.monotonic() + min(seconds, self.poll_interval)
        listening = self._listener.connected()
        while not stopper.requested and not woken.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            if not listening:
                woken.wait(min(left, SLICE))
            elif self._listener.notified(min(left, SLICE)):
                return
            else:  # a dropped connection: poll until the next wait reconnects
                listening = self._listener.open
        woken.clear()

    def close(self) -> None:
        self._listener.close()


class Pool:
    """Up to ``size`` attempts running at once, each supervised by a slot
    thread; their outcomes wait in :meth:`finished` for the main thread. The
    slot threads (and their job threads) are started as needed and kept:
    a thread per run would cost more than a short run."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.woken = threading.Event()
        self._todo: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[Attempt, Outcome]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._busy = 0  # attempts submitted and not yet ended
        self._threads: list[threading.Thread] = []

    def free(self) -> int:
        with self._lock:
            return self.size - self._busy

    def submit(self, attempt: Attempt, execute: Execute) -> None:
        with self._lock:
            self._busy += 1
            more = self._busy > len(self._threads)
        if more:  # every slot thread is busy: one more (at most ``size``)
            thread = threading.Thread(
                target=self._slot, name=f"runtrack-slot-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        self._todo.put((attempt, execute))

    def _slot(self) -> None:
        hands = JobThread()
        try:
            while (work := self._todo.get()) is not None:
                attempt, execute = work
                try:
                    outcome = execute(attempt, hands)
                except BaseException as exc:  # the run could not even start
                    outcome = Outcome(None, None, exc)
                self._done.put((attempt, outcome))
                with self._lock:
                    self._busy -= 1
                self.woken.set()
        finally:
            hands.close()

    def finished(self) -> list[tuple[Attempt, Outcome]]:
        done: list[tuple[Attempt, Outcome]] = []
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                return done

    def join(self) -> None:
        """Wait for every attempt (each applies the runner's grace itself);
        the slot threads end."""
        for _ in self._threads:
            self._todo.put(None)  # after every attempt submitted
        for thread in self._threads:
            thread.join()
        self._threads = []


def pause_provider(
    ledger: Ledger,
    spec: JobSpec,
    run_id: int,
    delay: timedelta,
    error: BaseException,
    paused: dict[str, datetime],
) -> None:
    """Pause the provider of a rate-limited run for ``delay`` (a longer pause,
    an operator's, stands) and note its end in ``paused``."""
    current = ledger.paused(spec.provider)
    if current is not None and current.until >= ledger.now() + delay:
        paused[spec.provider] = current.until
        return
    record = ledger.pause(
        spec.provider,
        for_=delay,
        # The job's exception describes itself: it may refuse (failures.message).
        reason=f"rate limited (job {spec.key}, run {run_id}): {capped(message(error), 900)}",
        by=ledger.worker_id,
    )
    paused[spec.provider] = record.until
    log.warning("provider %s paused until %s", spec.provider, record.until.isoformat())
