"""Times and durations as people read them, the same wherever a sentence
names one: the dashboard, a health's reason, an error message the ledger
writes, the CLI following a queued run."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["clock", "interval", "span"]

_UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def span(value: timedelta | float | None) -> str:
    """A duration in at most two units: ``850 ms``, ``12.3 s``, ``4 min 05 s``,
    ``2 h 03 min``, ``3 d 4 h``; an em dash for an unknown duration."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    whole = int(seconds)
    for index, (size, unit) in enumerate(_UNITS[:-1]):
        if whole >= size:
            major, rest = divmod(whole, size)
            minor_size, minor_unit = _UNITS[index + 1]
            minor = rest // minor_size
            if not minor:
                return f"{major} {unit}"
            width = 2 if minor_unit in ("min", "s") else 1
            return f"{major} {unit} {minor:0{width}d} {minor_unit}"
    return f"{whole} s"  # pragma: no cover - the loop always returns


def clock(value: datetime | None) -> str:
    """An absolute UTC time (aware, or naive UTC as the tables hold it) to
    the second: ``2026-01-31 14:05:09 UTC``."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def interval(value: timedelta) -> str:
    """A schedule's interval as it is written (``"15m"``, ``"1h"``, ``"2d"``,
    ``"90s"``): the largest unit it is a whole number of; ``"0.5s"`` below a
    second's precision."""
    seconds = value.total_seconds()
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
