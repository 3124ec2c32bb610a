"""The clock seam: database time with a skewed local clock, manual time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runtrack.clock import DatabaseClock, ManualClock, OffsetClock, utc


def test_database_clock_cancels_a_constant_local_error() -> None:
    server = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    local = OffsetClock(server, timedelta(minutes=-5))  # this machine is 5 min slow
    fetches: list[datetime] = []

    def fetch() -> datetime:
        fetches.append(server.now())
        return server.now()

    clock = DatabaseClock(fetch, wall=local, recalibrate=3600)
    assert clock.now() == server.now()
    server.advance(42.5)
    # Not re-read: the local clock's elapsed time carries the server's time on.
    assert clock.now() == server.now()
    assert len(fetches) == 1


def test_database_clock_rereads_after_the_recalibration_interval() -> None:
    server = ManualClock()
    calls = 0

    def fetch() -> datetime:
        nonlocal calls
        calls += 1
        return server.now()

    clock = DatabaseClock(fetch, wall=server, recalibrate=0.0)
    clock.now()
    clock.now()
    assert calls == 2


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 1, 1))  # noqa: DTZ001 - naive is read as UTC
    start = clock.now()
    assert start.tzinfo is UTC
    assert clock.now() == start
    assert clock.advance(timedelta(hours=1)) == start + timedelta(hours=1)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert clock.now().year == 2027


def test_utc_normalizes_offsets() -> None:
    from datetime import timezone

    madrid = timezone(timedelta(hours=1))
    assert utc(datetime(2026, 1, 1, 13, 0, tzinfo=madrid)) == datetime(
        2026, 1, 1, 12, 0, tzinfo=UTC
    )
