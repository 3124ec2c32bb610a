"""Parsing of option values that click does not know: durations and times.

A bad value is a usage error (exit 2) that names the option, said by click.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from runtrack import inputs
from runtrack.errors import InvalidInput

__all__ = [
    "TimeArg",
    "duration_option",
    "instant_option",
    "parse_instant",
    "parse_time",
    "resolve_time",
    "time_option",
    "to_duration",
]

#: An absolute time, or an age to subtract from the ledger's now.
TimeArg = datetime | timedelta


def duration_option(value: str | None) -> str | None:
    """Check ``15m`` / ``1h`` / ``90d`` / seconds; the ledger parses it again."""
    if value is None:
        return None
    try:
        inputs.duration("duration", value)
    except InvalidInput as exc:
        raise typer.BadParameter(_duration_problem(value, exc)) from None
    return value


def _duration_problem(value: str, exc: InvalidInput) -> str:
    if "no unit" in exc.problem:
        return f"{exc.problem}: {exc.allowed}"
    return f"{value!r} is not a duration (30s, 15m, 2h, 90d or 2w)"


def to_duration(value: str | None) -> timedelta | None:
    """A duration option's value (already checked by its callback)."""
    return None if value is None else inputs.duration("duration", value)


def parse_time(value: str) -> TimeArg:
    """ISO 8601 (naive means UTC) or an age such as ``24h`` (that long ago)."""
    text = value.strip()
    try:
        return parse_instant(text)
    except typer.BadParameter:
        pass
    try:
        return inputs.duration("time", text)
    except InvalidInput as exc:
        if "no unit" in exc.problem:
            problem = f"{exc.problem}: {exc.allowed} (or an ISO 8601 time)"
            raise typer.BadParameter(problem) from None
        raise typer.BadParameter(
            f"{value!r} is neither an ISO 8601 time (2026-01-31T08:00:00Z) "
            "nor an age (30m, 24h, 7d)"
        ) from None


def parse_instant(value: str) -> datetime:
    """An ISO 8601 time (naive means UTC)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time (2026-01-31T08:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def instant_option(value: str | None) -> str | None:
    if value is not None:
        parse_instant(value)
    return value


def time_option(value: str | None) -> str | None:
    """Validate a time option early (so a bad one is a usage error)."""
    if value is not None:
        parse_time(value)
    return value


def resolve_time(value: str | None, now: datetime) -> datetime | None:
    """The absolute time an option means, ages counted back from ``now``."""
    if value is None:
        return None
    parsed = parse_time(value)
    return now - parsed if isinstance(parsed, timedelta) else parsed
