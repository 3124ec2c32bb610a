"""Waking on a queued run: PostgreSQL's ``LISTEN`` on the queue's channel.

A trigger ``NOTIFY``s the channel when it commits (see
:mod:`runtrack.store.queue`); a runner waiting between cycles listens on its
own autocommit connection so that it wakes at once. Other databases have no
such thing: there the runner polls, as it also does to catch a notification
lost while its connection was down.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from sqlalchemy import Engine

from runtrack.store.queue import CHANNEL

__all__ = ["QueueListener"]

log = logging.getLogger("runtrack.runner")


class QueueListener:
    """The connection that LISTENs, opened on first use and again after it
    dropped; every database but PostgreSQL has none (:meth:`notified` then
    just reports that it cannot tell)."""

    def __init__(self, engine: Engine) -> None:
        self._url = engine.url
        self.available = engine.dialect.name == "postgresql"
        self._conn: Any = None
        self._failed = False

    @property
    def open(self) -> bool:
        return self._conn is not None

    def connected(self) -> bool:
        """Whether a LISTEN connection is open (opening it if it can)."""
        if self._conn is None and self.available:
            self._conn = self._open()
        return self._conn is not None

    def _open(self) -> Any:
        import psycopg  # PostgreSQL runners only

        url = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            if not self._failed:  # said once: the poll still finds every run
                log.warning("cannot LISTEN for queued runs (polling instead): %s", exc)
            self._failed = True
            return None
        return conn

    def notified(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a notification on the channel. A
        dropped connection is closed, to be opened again on the next wait."""
        try:
            return any(True for _ in self._conn.notifies(timeout=timeout, stop_after=1))
        except Exception as exc:
            log.warning("LISTEN connection lost (%s); reconnecting", exc)
            self.close()
            return False

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
