"""How records look: as JSON for machines and as Rich tables for people.

The JSON shapes are :mod:`runtrack.vocabulary`'s, the API's too;
:func:`jsonable` writes their datetimes as ISO 8601 in UTC with a ``Z``
suffix, durations as seconds, statuses as their string values.
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

from runtrack.health import JobHealth
from runtrack.models import JobRecord, JobState, ProviderState, RunRecord
from runtrack.terminal import visible
from runtrack.workers import on_wall_clock

__all__ = [
    "STATUS_STYLES",
    "UNLIMITED",
    "Column",
    "Fitted",
    "counters_text",
    "duration_text",
    "jobs_table",
    "jsonable",
    "pauses_table",
    "plain",
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


def plain(value: object) -> Text:
    """User data as literal text: Rich must never read it as markup, and
    control characters are shown as escapes, never sent to the terminal."""
    return Text(visible(str(value)))


def status_text(status: str | None) -> Text:
    """A status as coloured text (the word itself carries the meaning)."""
    if status is None:
        return Text("-", style="dim")
    return Text(visible(str(status)), style=STATUS_STYLES.get(str(status), ""))


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
    grow: bool = False  # takes the room left over (or gives it back)


#: The width a table is laid out in when nothing may be cut (piped, --wide).
UNLIMITED = 100_000


@dataclass(frozen=True, slots=True)
class Fitted:
    """A table laid out for a width, and the headers of the columns it dropped."""

    table: Table
    hidden: list[str]


def fitted_table(columns: list[Column[T]], rows: list[T], width: int | None) -> Fitted:
    """The rows under the columns that fit in ``width`` characters (every
    column at its natural width, nothing cut, when ``width`` is ``None``).

    Each shown column keeps the room it asked for (a time is never cut to
    ``00:37:...``); a wrapping column is at least as wide as its longest
    word, so it wraps between words, never inside one; the ``grow`` column
    takes what is left (or gives up what is missing) and ends in an ellipsis
    when it must."""
    # Three characters between columns (two paddings and the blank rule of
    # the box), and one blank edge on each side.
    fixed = sum(c.width + 3 for c in columns if not c.optional) - 1
    room = UNLIMITED if width is None else width - fixed
    shown, hidden = [], []
    for column in columns:
        if column.optional:
            if column.width + 3 > room:
                hidden.append(column.header)
                continue
            room -= column.width + 3
        shown.append(column)
    cells = [[_cell(column.cell(row)) for column in shown] for row in rows]
    words = [
        max((len(w) for r in cells for w in r[n].plain.split()), default=1)
        for n in range(len(shown))
    ]
    room -= sum(max(0, words[n] - c.width) for n, c in enumerate(shown) if c.wrap)
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for n, column in enumerate(shown):
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.wrap,
            overflow="fold" if column.wrap else "ellipsis",
            **_bounds(column, words[n], None if width is None else room),
        )
    for row_cells in cells:
        table.add_row(*row_cells)
    return Fitted(table, hidden)


def _bounds(column: Column[Any], longest_word: int, room: int | None) -> Any:
    """The width arguments of a column: none without a width limit; a
    ``grow`` column fills the room left; a wrapping one holds its longest word."""
    if room is None:
        return {}
    if column.wrap:
        return {"width": max(column.width, longest_word)}
    if column.grow:
        return {"min_width": min(column.width, 12), "max_width": max(column.width + room, 12)}
    return {"width": column.width}


def _cell(value: str | Text) -> Text:
    return value if isinstance(value, Text) else plain(value)


RUN_COLUMNS: list[Column[RunRecord]] = [
    Column("id", lambda r: str(r.id), 6, justify="right"),
    Column("job", lambda r: r.job, 28, grow=True),
    Column("status", lambda r: status_text(r.status), 9),
    Column("started (UTC)", lambda r: time_text(r.started_at or r.created_at), 19),
    Column("duration", lambda r: duration_text(r.duration), 8, justify="right"),
    Column("provider", lambda r: r.provider or "-", 14, optional=True),
    Column("counters", lambda r: counters_text(r.counters), 24, optional=True, wrap=True),
]
#: Shown when a listed run has labels (a list without any keeps its columns).
LABELS_COLUMN: Column[RunRecord] = Column(
    "labels", lambda r: labels_text(r.labels), 20, optional=True, wrap=True
)


def labels_text(labels: Mapping[str, str]) -> str:
    return " ".join(f"{name}={value}" for name, value in sorted(labels.items())) or "-"


def runs_table(runs: list[RunRecord], width: int | None) -> Fitted:
    labelled = any(run.labels for run in runs)
    return fitted_table([*RUN_COLUMNS, LABELS_COLUMN] if labelled else RUN_COLUMNS, runs, width)


def _last_status(state: JobState) -> Text:
    status = status_text(state.job.last_status)
    if state.pause is not None:
        status.append(" (paused)", style="yellow")
    return status


JOB_COLUMNS: list[Column[JobState]] = [
    Column("job", lambda s: s.job.key, 28, grow=True),
    Column("last status", _last_status, 18),
    Column("last success (UTC)", lambda s: time_text(s.job.last_success_at), 19),
    Column("failures", lambda s: str(s.job.consecutive_failures), 8, justify="right"),
    Column("provider", lambda s: s.job.provider or "-", 14, optional=True),
    Column("active", lambda s: str(s.active_runs), 6, optional=True, justify="right"),
    Column("watermark (UTC)", lambda s: time_text(s.job.watermark), 19, optional=True),
    # Issue 17: the schedule, and the next due time on its zone's clock.
    Column("schedule", lambda s: s.job.schedule or "-", 26, optional=True, wrap=True),
    Column("next due (local)", lambda s: _next_due(s.job), 26, optional=True),
    # Issue 21: ticks skipped because the job or its provider was busy.
    Column("ticks skipped", lambda s: _skipped(s.job), 30, optional=True, wrap=True),
]


def _skipped(job: JobRecord) -> str:
    """``3 ticks skipped, last at 2026-12-06 10:00:00 UTC: busy: ...``, or ``-``."""
    if not job.ticks_skipped:
        return "-"
    ticks = "tick" if job.ticks_skipped == 1 else "ticks"
    last = f", last at {time_text(job.last_skipped_at)} UTC" if job.last_skipped_at else ""
    why = f": {job.last_skip_reason}" if job.last_skip_reason else ""
    return f"{job.ticks_skipped} {ticks} skipped{last}{why}"


def _next_due(job: JobRecord) -> str:
    local = on_wall_clock(job.next_due_at, job.schedule_tz)
    return "-" if local is None else local.strftime("%Y-%m-%d %H:%M:%S %Z")


def jobs_table(
    states: list[JobState], width: int | None, health: Mapping[str, JobHealth] | None = None
) -> Fitted:
    """The jobs; with ``health`` (issue 18), each job's health first after its key."""
    if not health:
        return fitted_table(JOB_COLUMNS, states, width)
    column: Column[JobState] = Column("health", lambda s: _health(health.get(s.job.key)), 9)
    return fitted_table([JOB_COLUMNS[0], column, *JOB_COLUMNS[1:]], states, width)


_HEALTH_STYLES = {"failing": "bold red", "late": "bold red", "paused": "yellow", "healthy": "green"}


def _health(found: JobHealth | None) -> Text:
    if found is None:
        return Text("-", style="dim")
    return Text(found.state.value, style=_HEALTH_STYLES.get(found.state.value, "cyan"))


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


def pauses_table(providers: list[ProviderState], width: int | None) -> Fitted:
    return fitted_table(PROVIDER_COLUMNS, providers, width)
