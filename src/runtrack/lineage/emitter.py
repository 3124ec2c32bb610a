"""A bounded queue drained by one daemon thread: how lineage stays off the hot path.

The run's thread only puts a record on the queue (never blocks: a full queue
drops the event with a warning). The thread sends; a send that fails or
hangs costs that thread time, never the run's. ``close`` waits a bounded time
for what is queued, then gives up on the rest and says how much was lost.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from runtrack.logs import run_fields
from runtrack.models import RunRecord

__all__ = ["Emission", "Emitter", "EmitterStats"]

log = logging.getLogger("runtrack.lineage")


@dataclass(frozen=True, slots=True)
class Emission:
    """One event to send: its type (``START``, ``COMPLETE``, ...) and the run
    as committed when it happened."""

    event_type: str
    run: RunRecord


@dataclass(frozen=True, slots=True)
class EmitterStats:
    """Counts since the emitter started."""

    sent: int
    failed: int
    dropped: int
    queued: int


class _Stop:
    """Queued by ``close``: the thread finishes what is before it, then exits."""


class Emitter:
    """Sends emissions with ``send`` on a daemon thread, from a bounded queue."""

    def __init__(
        self,
        send: Callable[[Emission], None],
        *,
        maxsize: int = 1000,
        on_close: Callable[[], object] | None = None,
        name: str = "runtrack-lineage",
    ) -> None:
        self._send = send
        self._on_close = on_close
        self._queue: queue.Queue[Emission | threading.Event | _Stop] = queue.Queue(maxsize)
        self._closed = False
        self._abandoned = threading.Event()
        self._congested = False  # warn once per episode of a full queue, not per event
        self._lock = threading.Lock()
        self.sent = self.failed = self.dropped = 0
        self._waiting = 0  # events queued, not yet sent, failed or dropped
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def stats(self) -> EmitterStats:
        return EmitterStats(self.sent, self.failed, self.dropped, self._waiting)

    def submit(self, emission: Emission) -> bool:
        """Queue ``emission`` without blocking; False if it was dropped."""
        if self._closed:
            self._drop(emission, "the emitter is closed")
            return False
        with self._lock:
            self._waiting += 1  # before the put: the thread may take it at once
        try:
            self._queue.put_nowait(emission)
        except queue.Full:
            with self._lock:
                self._waiting -= 1
            self._drop(emission, f"its queue is full ({self._queue.maxsize} events)")
            return False
        self._congested = False
        return True

    def _drop(self, emission: Emission, why: str) -> None:
        with self._lock:
            self.dropped += 1
            first = not self._congested
            self._congested = True
        if first:
            log.warning(
                "lineage event %s of run %s dropped: %s (%d dropped so far)",
                emission.event_type,
                emission.run.id,
                why,
                self.dropped,
                extra=run_fields(emission.run),
            )

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything queued so far is sent
        (or failed); False on timeout."""
        if not self._thread.is_alive():  # closed: nothing more will be sent
            return self._waiting == 0
        deadline = time.monotonic() + timeout
        marker = threading.Event()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.wait(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float) -> bool:
        """Stop accepting events, send what is queued for up to ``timeout``
        seconds, then drop the rest. True if nothing was lost."""
        if self._closed:
            return not self._thread.is_alive()
        self._closed = True
        deadline = time.monotonic() + timeout
        # If the queue stays full, the thread drains until the deadline, then abandons the rest.
        with contextlib.suppress(queue.Full):
            self._queue.put(_Stop(), timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            return True
        self._abandoned.set()  # the thread drops what is left after its current send
        with contextlib.suppress(queue.Full):  # wakes the thread if it drained the queue
            self._queue.put_nowait(_Stop())
        log.warning(
            "lineage emitter closed after %.1f s with %d event(s) unsent; they are dropped",
            timeout,
            self._waiting,
        )
        return False

    def _loop(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if isinstance(item, _Stop):
                    return
                if isinstance(item, threading.Event):
                    item.set()
                elif self._abandoned.is_set():
                    self._count(dropped=1)
                else:
                    self._deliver(item)
                if self._abandoned.is_set() and self._queue.empty():
                    return
        finally:
            self._finish()

    def _deliver(self, emission: Emission) -> None:
        try:
            self._send(emission)
        except Exception as exc:
            self._count(failed=1)
            log.warning(
                "lineage event %s of run %s could not be sent: %s",
                emission.event_type,
                emission.run.id,
                exc,
                extra=run_fields(emission.run),
            )
        else:
            self._count(sent=1)

    def _count(self, *, sent: int = 0, failed: int = 0, dropped: int = 0) -> None:
        with self._lock:
            self.sent += sent
            self.failed += failed
            self.dropped += dropped
            self._waiting -= sent + failed + dropped

    def _finish(self) -> None:
        if self._on_close is None:
            return
        try:
            self._on_close()
        except Exception:
            log.exception("lineage transport failed to close")
