"""How records look: as JSON for machines and as Rich tables for people.

The JSON form is stable: a record's field names are the attribute names of
the frozen records in :mod:`runtrack.models`, datetimes are ISO 8601 in UTC
with a ``Z`` suffix, durations are seconds, statuses are their string values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from rich.table import Table
from rich.text import Text

from runtrack.models import GroupSummary, JobState, ProviderState, RunRecord

__all__ = [
    "STATUS_STYLES",
    "counters_text",
    "duration_text",
    "group_json",
    "jobs_table",
    "jsonable",
    "pauses_table",
    "plain",
    "run_json",
    "runs_table",
    "status_text",
    "time_text",
]

STATUS_STYLES = {
    "pending": "yellow",
    "running": "cyan",
    "success": "green",
    "partial": "dark_orange",
    "failed": "bold red",
    "cancelled": "magenta",
}


def jsonable(value: Any) -> Any:
    """``value`` with datetimes, enums, timedeltas and records made JSON-ready."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def run_json(run: RunRecord) -> dict[str, Any]:
    """A run as JSON, with its computed duration."""
    data: dict[str, Any] = jsonable(run)
    data["duration_seconds"] = jsonable(run.duration)
    return data


def group_json(group: GroupSummary) -> dict[str, Any]:
    data: dict[str, Any] = jsonable(group)
    data["found"] = group.found
    return data


def plain(value: object) -> Text:
    """User data as literal text: Rich must never read it as markup."""
    return Text(str(value))


def status_text(status: str | None) -> Text:
    """A status as coloured text (the word itself carries the meaning)."""
    if status is None:
        return Text("-", style="dim")
    return Text(str(status), style=STATUS_STYLES.get(str(status), ""))


def time_text(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration_text(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def counters_text(counters: Mapping[str, int | float], limit: int = 4) -> str:
    if not counters:
        return "-"
    shown = [f"{name}={value:g}" for name, value in list(counters.items())[:limit]]
    if len(counters) > limit:
        shown.append(f"+{len(counters) - limit} more")
    return " ".join(shown)


def runs_table(runs: list[RunRecord]) -> Table:
    table = Table(title=None, header_style="bold", expand=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("job", overflow="fold")
    table.add_column("provider", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("counters", overflow="fold")
    for run in runs:
        table.add_row(
            str(run.id),
            plain(run.job),
            plain(run.provider or "-"),
            status_text(run.status),
            time_text(run.started_at or run.created_at),
            duration_text(run.duration),
            plain(counters_text(run.counters)),
        )
    return table


def jobs_table(states: list[JobState]) -> Table:
    table = Table(header_style="bold")
    table.add_column("job", overflow="fold")
    table.add_column("provider", overflow="fold")
    table.add_column("last status", no_wrap=True)
    table.add_column("active", justify="right")
    table.add_column("last success (UTC)", no_wrap=True)
    table.add_column("failure streak", justify="right")
    table.add_column("watermark (UTC)", no_wrap=True)
    for state in states:
        job = state.job
        status = status_text(job.last_status)
        if state.pause is not None:
            status.append(" (paused)", style="yellow")
        table.add_row(
            plain(job.key),
            plain(job.provider or "-"),
            status,
            str(state.active_runs),
            time_text(job.last_success_at),
            str(job.consecutive_failures),
            time_text(job.watermark),
        )
    return table


def pauses_table(providers: list[ProviderState]) -> Table:
    table = Table(header_style="bold")
    table.add_column("provider", overflow="fold")
    table.add_column("jobs", justify="right")
    table.add_column("paused until (UTC)", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for provider in providers:
        pause = provider.pause
        table.add_row(
            plain(provider.name),
            str(provider.jobs),
            Text(time_text(pause.until), style="yellow") if pause else Text("-", style="dim"),
            plain(pause.reason if pause else ""),
        )
    return table
