"""The table the demo prints when its jobs have run: per job, how its runs
ended and what they counted."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from itertools import pairwise

from rich.console import Console
from rich.table import Table
from rich.text import Text

from runtrack.cli.render import STATUS_STYLES, plain, time_text
from runtrack.ledger import Ledger
from runtrack.models import RunRecord, RunStatus

__all__ = ["print_summary", "runs_since"]


def runs_since(ledger: Ledger, since: datetime) -> list[RunRecord]:
    """Every run created at or after ``since``, oldest first."""
    found: list[RunRecord] = []
    cursor = None
    while True:
        page = ledger.list_runs(since=since, limit=1000, cursor=cursor)
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            return found[::-1]


def print_summary(
    console: Console, ledger: Ledger, since: datetime, stories: list[str], incremental: str
) -> None:
    """The per-job table, the provider pauses, what the operator saw, and
    whether the ``incremental`` job's windows left a gap."""
    runs = runs_since(ledger, since)
    console.print(_jobs_table(runs))
    for pause in ledger.pauses():
        console.print(
            Text.assemble(
                ("paused ", "yellow"),
                plain(pause.provider),
                f" until {time_text(pause.until)} UTC: ",
                plain(pause.reason),
            )
        )
    for story in [*stories, *_windows(runs, incremental)]:
        console.print(Text.assemble(("- ", "dim"), plain(story)))


def _windows(runs: list[RunRecord], job: str) -> list[str]:
    """Do the incremental job's good runs' windows tile the timeline?"""
    good = [r for r in runs if r.job == job and r.status in (RunStatus.SUCCESS, RunStatus.PARTIAL)]
    if len(good) < 2:
        return []
    tiled = all(a.window_end == b.window_start for a, b in pairwise(good))
    verdict = "no gap, no overlap" if tiled else "GAPS FOUND"
    return [
        f"{job}: each of its {len(good)} good runs searched from where the previous one "
        f"stopped: {verdict} (watermark now {time_text(good[-1].window_end)} UTC)"
    ]


def _jobs_table(runs: list[RunRecord]) -> Table:
    by_job: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_job[run.job].append(run)
    table = Table(title="demo runs by job", title_justify="left", header_style="bold")
    table.add_column("job", no_wrap=True)
    table.add_column("runs", no_wrap=True)
    table.add_column("counters (all runs)", overflow="fold")
    for job in sorted(by_job):
        table.add_row(plain(job), _statuses(by_job[job]), _totals(by_job[job]))
    return table


def _statuses(runs: list[RunRecord]) -> Text:
    counts = Counter(run.status for run in runs)
    lines = [
        Text(f"{counts[status]} {status.value}", style=STATUS_STYLES[status])
        for status in RunStatus
        if counts.get(status)
    ]
    return Text("\n").join(lines)


def _totals(runs: list[RunRecord]) -> Text:
    totals: dict[str, float] = defaultdict(float)
    for run in runs:
        for name, value in run.counters.items():
            totals[name] += value
    return plain("\n".join(f"{name} {value:g}" for name, value in sorted(totals.items())))
