"""Sending the deliveries that are due: any process may, one attempt per
delivery at a time (a claim moves its ``next_at``), failures retried with
exponential backoff until ``give_up_at``, then recorded ``failed``.

A process killed between sending and recording leaves its claim to expire
(:data:`CLAIM`): another process sends it again, with the same idempotency
key. Nothing here runs on a run's path: the runner sends from a background
thread, ``runtrack check`` after checking.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from runtrack.alerts import DeliveryRecord, DeliveryState
from runtrack.notify.config import NotifySettings, redact
from runtrack.notify.sinks import send
from runtrack.store.incidents import AlertStore

__all__ = ["CLAIM", "Deliverer", "backoff"]

log = logging.getLogger("runtrack.notify")

#: How long one attempt owns a delivery by default (longer than a sink's timeout).
CLAIM = timedelta(seconds=60)


def backoff(attempts: int) -> timedelta:
    """The wait after failed attempt number ``attempts``: 1, 2, 4 ... s, at most 5 min."""
    return timedelta(seconds=min(2.0 ** max(attempts - 1, 0), 300.0))


class Deliverer:
    """Sends due deliveries; ``start()`` does it in a background thread."""

    def __init__(
        self, alerts: AlertStore, settings: NotifySettings, now: Callable[[], datetime]
    ) -> None:
        self.alerts = alerts
        self.settings = settings
        self.now = now
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def deliver_due(self, limit: int = 100) -> int:
        """One attempt at each due delivery; returns how many were delivered."""
        delivered = 0
        for delivery in self.alerts.due_deliveries(self.now(), limit):
            if self._attempt(delivery):
                delivered += 1
        return delivered

    def start(self) -> None:
        """Deliver in a daemon thread unless one is already at it."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._quietly, name="runtrack-notify", daemon=True
            )
            self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _quietly(self) -> None:
        try:
            self.deliver_due()
        except Exception:  # the next maintenance pass tries again
            log.exception("notification delivery failed")

    def _attempt(self, delivery: DeliveryRecord) -> bool:
        now = self.now()
        if not self.alerts.claim_delivery(delivery, now + self.settings.claim):
            return False  # another process is at it
        attempts = delivery.attempts + 1
        error = send(delivery.sink, delivery.payload, self.settings.secret, self.settings.timeout)
        done = self.now()
        if error is None:
            self.alerts.delivery_result(delivery.id, DeliveryState.DELIVERED, done, None, None)
            return True
        retry_at = done + backoff(attempts)
        if retry_at > delivery.give_up_at:
            log.warning(
                "notification %s to %s failed for good after %d attempt(s): %s",
                delivery.idempotency_key,
                redact(delivery.sink),
                attempts,
                error,
            )
            self.alerts.delivery_result(delivery.id, DeliveryState.FAILED, done, error, None)
        else:
            self.alerts.delivery_result(delivery.id, DeliveryState.PENDING, done, error, retry_at)
        return False
