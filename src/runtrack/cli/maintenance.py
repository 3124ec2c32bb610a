"""``runtrack migrate``, ``reap`` and ``prune``: keeping the ledger healthy."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from runtrack.cli.params import duration_option, to_duration
from runtrack.cli.state import err_console, print_json, state_of
from runtrack.models import PruneResult

__all__ = ["register"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")]


def migrate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Bring the database schema up to date (safe to run from many processes)."""
    with state_of(ctx).ledger(migrate=False, create=True) as ledger:
        before, _ = ledger.schema_revision()
        ledger.migrate()
        after, _ = ledger.schema_revision()
    if as_json:
        print_json({"from_revision": before, "to_revision": after, "changed": before != after})
    elif before == after:
        err_console().print(f"schema is up to date (revision {after})")
    else:
        err_console().print(f"schema migrated from {before or 'empty'} to {after}")


def reap(
    ctx: typer.Context,
    stale_after: Annotated[
        str | None,
        typer.Option(
            callback=duration_option,
            help="Runs without a heartbeat for this long are dead (default: the ledger's).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Finalize runs whose worker is gone, and runs stuck after a cancel.

    A run silent for longer than the stale threshold ends failed with
    error_type heartbeat_timeout; a run that ignored a cancel request for
    longer than the cancel grace ends cancelled."""
    with state_of(ctx).ledger() as ledger:
        reaped = ledger.reap(to_duration(stale_after))
    if as_json:
        print_json({"reaped": reaped})
    elif reaped:
        err_console().print(f"reaped {len(reaped)} run(s): {', '.join(map(str, reaped))}")
    else:
        err_console().print("no stale runs")


def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(callback=duration_option, help="Age of the runs to delete: 90d, 12w, 720h."),
    ],
    items_only: Annotated[
        bool, typer.Option(help="Keep the runs; delete only their items.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Count what would go; delete nothing.")] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Runs per transaction.")
    ] = 1000,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation on a terminal.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete old finished runs and their items, in short batches.

    Never deletes active runs, a job's latest run, its latest successful run,
    or job state, so incremental jobs keep their place. On a terminal it
    counts first and asks before deleting (--yes does not ask)."""
    if not dry_run and not yes and sys.stdin.isatty():
        _confirm(ctx, older_than, items_only)
    with state_of(ctx).ledger() as ledger, _progress_bar(dry_run) as report:
        result = ledger.prune(
            older_than,
            items_only=items_only,
            dry_run=dry_run,
            batch_size=batch_size,
            progress=report,
        )
    if as_json:
        print_json(
            {
                "runs": result.runs,
                "items": result.items,
                "batches": result.batches,
                "dry_run": result.dry_run,
            }
        )
        return
    verb = "would delete" if dry_run else "deleted"
    err_console().print(f"{verb} {result.runs} run(s) and {result.items} item(s)")


def _confirm(ctx: typer.Context, older_than: str, items_only: bool) -> None:
    """Count what would go and ask; a no ends the command (exit 1)."""
    with state_of(ctx).ledger() as ledger:
        would = ledger.prune(older_than, items_only=items_only, dry_run=True)
    what = f"{would.items} item(s)"
    if not items_only:
        what = f"{would.runs} run(s) and {what}"
    if not typer.confirm(f"delete {what} older than {older_than}?", err=True):
        err_console().print("nothing deleted")
        raise typer.Exit(1)


@contextmanager
def _progress_bar(dry_run: bool) -> Iterator[Callable[[PruneResult], None]]:
    """A live line on stderr that each finished batch updates."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("runs {task.fields[runs]:,}  items {task.fields[items]:,}"),
        TextColumn("batches {task.completed:,.0f}"),
        TimeElapsedColumn(),
    )
    label = "counting" if dry_run else "pruning"
    with Progress(*columns, console=err_console(), transient=True) as progress:
        task = progress.add_task(label, total=None, runs=0, items=0)

        def report(result: PruneResult) -> None:
            progress.update(task, completed=result.batches, runs=result.runs, items=result.items)

        yield report


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)
    app.command("reap")(reap)
    app.command("prune")(prune)
