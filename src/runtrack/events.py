"""Run lifecycle events for integrations (OpenLineage, metrics pushers).

The ledger tells its listeners about a run after the database has committed
the change, never before, so a listener never reports a state the database
does not hold. Listeners run on the thread that made the change; a listener
must be quick and must not raise (one that does is logged and ignored, so an
integration can never fail or block a run). Slow work belongs on the
listener's own queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from runtrack.logs import run_fields
from runtrack.models import RunRecord

__all__ = ["Events", "RunListener"]

log = logging.getLogger("runtrack.events")


@runtime_checkable
class RunListener(Protocol):
    """Receives a run's record when it starts and when it becomes terminal."""

    def run_started(self, run: RunRecord) -> None: ...

    def run_finished(self, run: RunRecord) -> None: ...

    def close(self) -> None: ...


class Events:
    """Fans committed run changes out to listeners."""

    def __init__(self, listeners: Sequence[RunListener], fetch: Callable[[int], RunRecord | None]):
        self._listeners = list(listeners)
        self._fetch = fetch

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: RunListener) -> None:
        self._listeners.append(listener)

    def started(self, run_id: int) -> None:
        self._emit(run_id, "run_started")

    def finished(self, run_id: int) -> None:
        self._emit(run_id, "run_finished")

    def _emit(self, run_id: int, method: str) -> None:
        if not self._listeners:
            return  # no extra read on the hot path when nobody listens
        try:
            record = self._fetch(run_id)
        except Exception:
            log.exception(
                "could not read run %s for its %s event", run_id, method, extra={"run_id": run_id}
            )
            return
        if record is None:
            return
        for listener in self._listeners:
            try:
                getattr(listener, method)(record)
            except Exception:
                log.exception(
                    "run listener %r failed on %s", listener, method, extra=run_fields(record)
                )

    def close(self) -> None:
        for listener in self._listeners:
            try:
                listener.close()
            except Exception:
                log.exception("run listener %r failed to close", listener)
