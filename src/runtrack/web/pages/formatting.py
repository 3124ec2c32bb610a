"""How the dashboard writes times, durations, numbers and JSON for people.

Plain functions registered as Jinja filters; every value they return is text
that Jinja escapes like any other.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

__all__ = ["ago", "clock", "compact_json", "number", "pretty_json", "quoted", "span"]

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


def ago(value: datetime | None, now: datetime) -> str:
    """``3 min ago`` / ``in 5 min``; ``never`` for ``None``."""
    if value is None:
        return "never"
    delta = now - value
    if abs(delta) < timedelta(seconds=1):
        return "just now"
    if delta < timedelta(0):
        return f"in {span(-delta)}"
    return f"{span(delta)} ago"


def clock(value: datetime | None) -> str:
    """An absolute UTC time to the second: ``2026-01-31 14:05:09 UTC``."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: int | float | None) -> str:
    """Thousands separated; floats to at most three decimals."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{int(value):,}"


def pretty_json(value: Any) -> str:
    """Indented JSON for a ``<pre>`` block (Jinja escapes the result)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def compact_json(value: Any, limit: int = 160) -> str:
    """One line of JSON, shortened to ``limit`` characters."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(value: str) -> str:
    """A path segment with every reserved character percent-encoded (job keys
    may hold ``/``, ``?`` or ``#``)."""
    return quote(value, safe="")
