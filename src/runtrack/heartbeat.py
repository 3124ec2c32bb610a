"""The one heartbeat thread of a ledger.

Every interval it writes, for all active runs of this process at once, in one
transaction: ``heartbeat_at`` plus counters and progress (one UPDATE per 500
runs, fenced by each run's uid), then reads back their status and cancel
requests (one SELECT per 500 runs). Then it writes their buffered items, again
only for runs that are still ours. A run whose row is no longer ``running``
was reaped: its handle learns it (``LeaseLost``). A database error in a tick
is logged and the next tick tries again; it never kills a run.

The thread is a daemon, stopped by ``Ledger.close()`` and at interpreter exit.
A process forked from one with a running thread starts afresh: the child
forgets the parent's runs (they are not its to keep alive) and its pooled
connections, and starts its own thread with its first run.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runtrack.errors import RuntrackError
from runtrack.logs import run_fields
from runtrack.models import RunStatus
from runtrack.run import Run, items_of, lose_lease, request_stop

if TYPE_CHECKING:
    from runtrack.clock import Clock
    from runtrack.store.liveness import LivenessStore
    from runtrack.store.values import RunState

__all__ = ["Heartbeat"]

log = logging.getLogger("runtrack.heartbeat")

# Every heartbeat of this process, so that a forked child can reset them all.
_ALL: weakref.WeakSet[Heartbeat] = weakref.WeakSet()


class Heartbeat:
    """Keeps this process's active runs alive and listening."""

    def __init__(
        self,
        liveness: LivenessStore,
        clock: Clock,
        interval: float,
        flush_items: Callable[[list[Run]], None],
    ) -> None:
        self._liveness = liveness
        self._clock = clock
        self.interval = interval
        self._flush_items = flush_items
        self._runs: dict[int, Run] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Set by a run whose item buffer filled inside an event loop: the
        # thread writes it now rather than at the next tick (see Run.item).
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        _ALL.add(self)

    def register(self, run: Run) -> None:
        with self._lock:
            self._runs[run.id] = run
            if self._thread is None:
                self._start()

    def unregister(self, run: Run) -> None:
        with self._lock:
            self._runs.pop(run.id, None)

    def get(self, run_id: int) -> Run | None:
        return self._runs.get(run_id)

    def _start(self) -> None:
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._loop, name="runtrack-heartbeat", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the thread and wait for its current tick to end."""
        with self._lock:  # a run registering now starts a new thread, not this one
            self._stop.set()
            self._wake.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(5.0, self.interval * 2))
        atexit.unregister(self.stop)

    def wake(self) -> None:
        """Ask the thread to write full item buffers now, between ticks."""
        self._wake.set()

    def _loop(self) -> None:
        while self._sleep():
            try:
                self.tick()
            except RuntrackError as exc:
                log.warning("heartbeat tick failed, retrying next tick: %s", exc)
            except Exception:
                log.exception("heartbeat tick failed unexpectedly, retrying next tick")

    def _sleep(self) -> bool:
        """Wait one interval, writing full item buffers whenever woken.
        Returns False once stopped."""
        deadline = time.monotonic() + self.interval
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            if self._wake.wait(left):
                self._wake.clear()
                if not self._stop.is_set():
                    self._flush_full()
        return False

    def _flush_full(self) -> None:
        with self._lock:
            full = [run for run in self._runs.values() if items_of(run).due()]
        try:
            self._flush_items(full)
        except RuntrackError as exc:  # the buffers are kept; a later flush retries
            log.warning("item flush failed, retrying later: %s", exc)
        except Exception:
            log.exception("item flush failed unexpectedly, retrying later")

    def tick(self) -> None:
        """One heartbeat for every active run (callable directly in tests)."""
        with self._lock:
            # In id order, like the reaper, so their row locks never deadlock.
            runs = sorted(self._runs.values(), key=lambda run: run.id)
        if not runs:
            return
        states = self._liveness.heartbeat(self._clock.now(), [beat(run) for run in runs])
        for run in runs:
            self._apply(run, states.get(run.id))
        self.ticks += 1
        # Items last: a failed insert must not cost the runs their heartbeat.
        self._flush_items([run for run in runs if run.id in self._runs])

    def _after_fork_in_child(self) -> None:
        self._runs = {}
        self._lock = threading.Lock()  # another thread may have held it at fork
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = None
        # The pooled connections are the parent's sockets: never share them.
        self._liveness.tx.engine.dispose(close=False)

    def _apply(self, run: Run, state: RunState | None) -> None:
        if run.id not in self._runs:
            return  # finalized by its own thread meanwhile
        if state is None or state[0] != RunStatus.RUNNING:
            log.warning(
                "run %s lost its lease (now %s)",
                run.id,
                state and state[0],
                extra={**run_fields(run), "status": state and state[0]},
            )
            lose_lease(run, state[0] if state else None)
            self.unregister(run)
        elif state[1] is not None:
            request_stop(run, state[2])


def beat(run: Run) -> dict[str, Any]:
    """A run's row of a batched heartbeat."""
    done, total = run.progress
    return {
        "b_id": run.id,
        "b_uid": run.uid,
        "b_counters": run.counters,
        "b_total": total,
        "b_done": done,
    }


def _reset_after_fork() -> None:
    for heartbeat in list(_ALL):
        heartbeat._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_after_fork)
