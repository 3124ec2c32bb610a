"""``runtrack workers``: who is alive and what each is running (issue 17)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from runtrack import vocabulary
from runtrack.cli.params import duration_option
from runtrack.cli.render import Column, Fitted, fitted_table, jsonable, time_text
from runtrack.cli.state import err_console, print_json, print_table, state_of
from runtrack.workers import WorkerRecord

__all__ = ["register"]

_STATE_STYLES = {"live": "green", "stopped": "dim", "dead": "bold red"}


def _running(worker: WorkerRecord) -> str:
    if not worker.running:
        return "-"
    return " ".join(f"#{r.run_id} {r.job}" for r in worker.running)


def _jobs(worker: WorkerRecord) -> str:
    return " ".join(j.key for j in worker.jobs) or "-"


COLUMNS: list[Column[WorkerRecord]] = [
    Column("worker", lambda w: w.id, 24, grow=True),
    Column("state", lambda w: Text(w.state.value, style=_STATE_STYLES[w.state.value]), 7),
    Column("last seen (UTC)", lambda w: time_text(w.last_seen_at), 19),
    Column("running", _running, 24, wrap=True),
    Column("host", lambda w: w.host, 16, optional=True),
    Column("pid", lambda w: str(w.pid), 7, optional=True, justify="right"),
    Column("conc.", lambda w: str(w.concurrency), 5, optional=True, justify="right"),
    Column("started (UTC)", lambda w: time_text(w.started_at), 19, optional=True),
    Column("jobs", _jobs, 24, optional=True, wrap=True),
    Column("version", lambda w: w.version, 8, optional=True),
]


def workers_table(found: list[WorkerRecord], width: int | None) -> Fitted:
    return fitted_table(COLUMNS, found, width)


def workers(
    ctx: typer.Context,
    recent: Annotated[
        str,
        typer.Option(
            callback=duration_option,
            help="Also list workers gone (stopped or dead) within this age: 1h, 1d, 7d.",
        ),
    ] = "1d",
    wide: Annotated[
        bool, typer.Option("--wide", help="Every column, even wider than the terminal.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")] = False,
) -> None:
    """List runner processes: live ones and those gone recently, with what each runs.

    A worker is dead when it has not been seen for the stale threshold (it was
    killed or cut off); stopped when it shut down gracefully."""
    with state_of(ctx).ledger() as ledger:
        found = ledger.workers(recent=recent)
    if as_json:
        print_json(jsonable({"data": [vocabulary.worker(w) for w in found]}))
    elif not found:
        err_console().print("no workers (a worker appears when a runner starts: runtrack worker)")
    else:
        print_table(lambda width: workers_table(found, width), wide=wide)


def register(app: typer.Typer) -> None:
    app.command("workers")(workers)
