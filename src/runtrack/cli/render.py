"""How records look: as JSON for machines and as Rich tables for people.

The JSON form is stable: a record's field names are the attribute names of
the frozen records in :mod:`runtrack.models`, datetimes are ISO 8601 in UTC
with a ``Z`` suffix, durations are seconds, statuses are their string values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

from rich import box
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

T = TypeVar("T")

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


@dataclass(frozen=True, slots=True)
class Column(Generic[T]):
    """A table column: ``width`` is the room it needs; an optional column is
    shown only when the terminal has that room left."""

    header: str
    cell: Callable[[T], str | Text]
    width: int
    optional: bool = False
    justify: Literal["left", "right"] = "left"
    wrap: bool = False


def fitted_table(columns: list[Column[T]], rows: list[T], width: int) -> Table:
    """The rows under the columns that fit in ``width`` characters."""
    room = width - sum(c.width + 2 for c in columns if not c.optional) + 2
    shown = []
    for column in columns:
        if column.optional:
            if column.width + 2 > room:
                continue
            room -= column.width + 2
        shown.append(column)
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in shown:
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.wrap,
            overflow="fold" if column.wrap else "ellipsis",
            min_width=min(column.width, 12),
        )
    for row in rows:
        table.add_row(*(_cell(column.cell(row)) for column in shown))
    return table


def _cell(value: str | Text) -> Text:
    return value if isinstance(value, Text) else plain(value)


RUN_COLUMNS: list[Column[RunRecord]] = [
    Column("id", lambda r: str(r.id), 6, justify="right"),
    Column("job", lambda r: r.job, 28),
    Column("status", lambda r: status_text(r.status), 9),
    Column("started (UTC)", lambda r: time_text(r.started_at or r.created_at), 19),
    Column("duration", lambda r: duration_text(r.duration), 8, justify="right"),
    Column("provider", lambda r: r.provider or "-", 14, optional=True),
    Column("counters", lambda r: counters_text(r.counters), 24, optional=True, wrap=True),
]


def runs_table(runs: list[RunRecord], width: int) -> Table:
    return fitted_table(RUN_COLUMNS, runs, width)


def _last_status(state: JobState) -> Text:
    status = status_text(state.job.last_status)
    if state.pause is not None:
        status.append(" (paused)", style="yellow")
    return status


JOB_COLUMNS: list[Column[JobState]] = [
    Column("job", lambda s: s.job.key, 28),
    Column("last status", _last_status, 18),
    Column("last success (UTC)", lambda s: time_text(s.job.last_success_at), 19),
    Column("failures", lambda s: str(s.job.consecutive_failures), 8, justify="right"),
    Column("provider", lambda s: s.job.provider or "-", 14, optional=True),
    Column("active", lambda s: str(s.active_runs), 6, optional=True, justify="right"),
    Column("watermark (UTC)", lambda s: time_text(s.job.watermark), 19, optional=True),
]


def jobs_table(states: list[JobState], width: int) -> Table:
    return fitted_table(JOB_COLUMNS, states, width)


def _until(provider: ProviderState) -> Text:
    if provider.pause is None:
        return Text("-", style="dim")
    return Text(time_text(provider.pause.until), style="yellow")


PROVIDER_COLUMNS: list[Column[ProviderState]] = [
    Column("provider", lambda p: p.name, 20, wrap=True),
    Column("jobs", lambda p: str(p.jobs), 5, justify="right"),
    Column("paused until (UTC)", _until, 19),
    Column("reason", lambda p: p.pause.reason if p.pause else "", 20, optional=True, wrap=True),
]


def pauses_table(providers: list[ProviderState], width: int) -> Table:
    return fitted_table(PROVIDER_COLUMNS, providers, width)
