"""``runtrack runs``, ``show`` and ``cancel``: what ran, how it went, stop it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from runtrack import inputs, vocabulary
from runtrack.cli.params import resolve_time, time_option
from runtrack.cli.render import (
    counters_text,
    duration_text,
    jsonable,
    labels_text,
    plain,
    runs_table,
    status_text,
    time_text,
)
from runtrack.cli.state import (
    err_console,
    out_console,
    print_json,
    print_table,
    state_of,
    user_name,
)
from runtrack.models import GroupSummary, RunRecord, RunStatus
from runtrack.terminal import visible

__all__ = ["register"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")]
Wide = Annotated[bool, typer.Option("--wide", help="Every column, even wider than the terminal.")]
GROUPS_SHOWN = 20


def list_runs(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Option(help="Only this job key.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    status: Annotated[
        list[RunStatus] | None,
        typer.Option("--status", "-s", help="Only these statuses (repeatable)."),
    ] = None,
    triggered_by: Annotated[str | None, typer.Option(help="Only runs triggered by this.")] = None,
    since: Annotated[
        str | None,
        typer.Option(callback=time_option, help="Created at or after: ISO 8601 or an age (24h)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(callback=time_option, help="Created before: ISO 8601 or an age (1h)."),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            "-l",
            metavar="NAME=VALUE",
            help="Only runs with this label (repeatable: with all of them).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Runs per page.")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="The next_cursor of the previous page.")
    ] = None,
    wide: Wide = False,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first, one page at a time."""
    labels = inputs.label_pairs("--label", label, "=") if label else None
    with state_of(ctx).ledger() as ledger:
        now = ledger.now()
        page = ledger.list_runs(
            job=job,
            provider=provider,
            status=status or None,
            triggered_by=triggered_by,
            since=resolve_time(since, now),
            until=resolve_time(until, now),
            limit=limit,
            cursor=cursor,
            labels=labels,
        )
    if as_json:
        data = (vocabulary.run_summary(r, now) for r in page.items)
        print_json(jsonable(vocabulary.cursor_page(data, page.next_cursor)))
        return
    if not page.items:
        err_console().print("no runs match")
        return
    print_table(lambda width: runs_table(page.items, width), wide=wide)
    if page.next_cursor:
        err_console().print(f"more: --cursor {page.next_cursor}")


def show(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(min=1, help="The run's id.")],
    as_json: JsonFlag = False,
) -> None:
    """Show one run: timeline, counters, window, error, items and groups.

    With --json, the run as GET /api/runs/ID gives it (its groups: `runtrack
    groups ID --json`)."""
    with state_of(ctx).ledger() as ledger:
        run = ledger.get_run(run_id)
        if as_json:
            print_json(jsonable(vocabulary.run_detail(run, ledger.now())))
            return
        groups = ledger.group_summary(run_id)
    console = out_console()
    console.print(_run_panel(run))
    if run.error_type or run.error_message:
        console.print(_error_panel(run))
    if groups:
        console.print(_groups_table(groups))


def _run_panel(run: RunRecord) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    window = f"{time_text(run.window_start)} -> {time_text(run.window_end)}"
    rows: list[tuple[str, Any]] = [
        ("job", run.job),
        ("provider", run.provider or "-"),
        ("status", status_text(run.status)),
        ("attempt", f"{run.attempt}" + (f" (retry of run {run.retry_of})" if run.retry_of else "")),
        ("triggered by", run.triggered_by),
        ("worker", f"{run.worker_id or '-'} (pid {run.pid or '-'})"),
        ("requested", time_text(run.created_at)),
        ("started", time_text(run.started_at)),
        ("last heartbeat", time_text(run.heartbeat_at)),
        ("finished", time_text(run.finished_at)),
        ("duration", duration_text(run.duration)),
        ("window (UTC)", window),
        ("progress", _progress(run)),
        ("counters", counters_text(run.counters, limit=50)),
        ("items", _items(run)),
    ]
    if run.cancel_requested_at:
        rows.append(("cancel requested", f"{time_text(run.cancel_requested_at)} {_cancel(run)}"))
    if run.labels:
        rows.append(("labels", labels_text(run.labels)))
    if run.params:
        rows.append(("params", json.dumps(run.params, ensure_ascii=False)))
    if run.checkpoint is not None:
        rows.append(("checkpoint", str(run.checkpoint)))
    for name, value in rows:
        grid.add_row(name, value if isinstance(value, Text) else plain(value))
    return Panel(grid, title=f"run {run.id}", title_align="left", expand=False)


def _progress(run: RunRecord) -> str:
    if run.progress_total:
        percent = 100 * run.progress_done / run.progress_total
        return f"{run.progress_done}/{run.progress_total} ({percent:.0f}%)"
    return str(run.progress_done) if run.progress_done else "-"


def _items(run: RunRecord) -> str:
    tallies = " ".join(f"{k}={v}" for k, v in run.items.items() if v)
    if run.groups_found is not None:
        tallies += f"; groups found={run.groups_found} missing={run.groups_missing}"
    return tallies or "-"


def _cancel(run: RunRecord) -> str:
    who = f"by {run.cancel_requested_by}" if run.cancel_requested_by else ""
    why = f"({run.cancel_reason})" if run.cancel_reason else ""
    return " ".join(part for part in (who, why) if part)


def _error_panel(run: RunRecord) -> Panel:
    body = Text(visible(f"{run.error_type or 'error'}: {run.error_message or ''}"), style="red")
    parts: list[Any] = [body]
    if run.error_stack:
        parts.append(Text(visible(run.error_stack.rstrip()), style="dim"))
    return Panel(Group(*parts), title="error", title_align="left", expand=False)


def _groups_table(groups: list[GroupSummary]) -> Table:
    found = sum(1 for g in groups if g.found)
    table = Table(
        title=f"groups: {found} found, {len(groups) - found} missing",
        title_justify="left",
        header_style="bold",
    )
    table.add_column("group", overflow="fold")
    table.add_column("found", no_wrap=True)
    table.add_column("found in", overflow="fold")
    table.add_column("items by status", overflow="fold")
    for group in groups[:GROUPS_SHOWN]:
        table.add_row(
            plain(group.group),
            Text("yes", style="green") if group.found else Text("no", style="red"),
            plain(", ".join(group.found_in) or "-"),
            plain(" ".join(f"{k}={v}" for k, v in sorted(group.counts.items()))),
        )
    if len(groups) > GROUPS_SHOWN:
        table.caption = f"{len(groups) - GROUPS_SHOWN} more groups: see `runtrack groups`"
    return table


def cancel(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(min=1, help="The run's id.")],
    reason: Annotated[str | None, typer.Option(help="Why; kept on the run.")] = None,
    by: Annotated[str | None, typer.Option(help="Who asks (default: your user name).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a pending run, or ask a running one to stop.

    A running run's code is interrupted at its next call on the run handle
    (within one heartbeat); the run then ends cancelled."""
    with state_of(ctx).ledger() as ledger:
        run = ledger.cancel(run_id, by=by or user_name(), reason=reason)
        now = ledger.now()
    if as_json:
        print_json(jsonable(vocabulary.run_detail(run, now)))
    elif run.status is RunStatus.CANCELLED:
        err_console().print(f"run {run.id} cancelled")
    else:
        err_console().print(
            f"run {run.id}: cancel requested; its worker stops at its next heartbeat"
        )


def register(app: typer.Typer) -> None:
    app.command("runs")(list_runs)
    app.command("show")(show)
    app.command("cancel")(cancel)
