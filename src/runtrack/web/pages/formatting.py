"""How the dashboard writes times, durations, numbers and JSON for people.

Plain functions registered as Jinja filters; every value they return is text
that Jinja escapes like any other.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from runtrack.readable import clock, span

__all__ = ["ago", "clock", "compact_json", "number", "pretty_json", "quoted", "span"]


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
