"""The one place runtrack reads time.

Timestamps that other processes compare (run start and finish, heartbeats,
staleness, windows, pauses) must agree across machines whose clocks disagree,
so the ledger's default clock is the database server's: :class:`DatabaseClock`
reads the server's time once, then advances it with the local clock's elapsed
time and re-reads it every ``recalibrate`` seconds. A worker whose wall clock
is minutes off therefore writes and compares the server's time, and the cost
is one query a minute instead of one per statement.

Tests inject :class:`ManualClock` and move time by hand.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "DatabaseClock", "ManualClock", "OffsetClock", "SystemClock", "utc"]


@runtime_checkable
class Clock(Protocol):
    """Something that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


def utc(value: datetime) -> datetime:
    """``value`` as aware UTC; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class SystemClock:
    """This machine's wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class OffsetClock:
    """Another clock shifted by a constant offset: a machine whose clock is wrong."""

    def __init__(self, base: Clock, offset: timedelta) -> None:
        self._base = base
        self.offset = offset

    def now(self) -> datetime:
        return self._base.now() + self.offset


class ManualClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = utc(start) if start else datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step
            return self._now

    def set(self, value: datetime) -> None:
        with self._lock:
            self._now = utc(value)


class DatabaseClock:
    """The database server's time, read once and advanced locally.

    ``fetch`` returns the server's current UTC time. Between reads the clock
    adds the elapsed time of ``wall`` (a constant error in the local clock
    cancels out) and re-reads the server after ``recalibrate`` seconds of
    ``time.monotonic()``.
    """

    def __init__(
        self,
        fetch: Callable[[], datetime],
        *,
        wall: Clock | None = None,
        recalibrate: float = 60.0,
    ) -> None:
        self._fetch = fetch
        self._wall = wall or SystemClock()
        self._recalibrate = recalibrate
        self._lock = threading.Lock()
        self._anchor: tuple[datetime, datetime, float] | None = None

    def now(self) -> datetime:
        anchor = self._anchor
        if anchor is None:
            anchor = self._calibrate()
        elif time.monotonic() - anchor[2] > self._recalibrate:
            # If the server is away, the last reading plus the local clock's
            # elapsed time is still the best estimate: a run that is finishing
            # during an outage must not fail for want of a fresh one.
            with contextlib.suppress(Exception):
                anchor = self._calibrate()
        server_then, wall_then, _ = anchor
        return server_then + (self._wall.now() - wall_then)

    def _calibrate(self) -> tuple[datetime, datetime, float]:
        with self._lock:
            before = self._wall.now()
            server = utc(self._fetch())
            after = self._wall.now()
            # The server read its clock somewhere during the round trip; the
            # midpoint halves the error.
            anchor = (server, before + (after - before) / 2, time.monotonic())
            self._anchor = anchor
            return anchor
