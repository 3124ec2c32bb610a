"""``runtrack check`` (evaluate every job's expectations once, for cron
users: exit 0 when nothing is open, 1 otherwise) and ``runtrack incidents``
(issue 18)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from runtrack.alerts import IncidentRecord
from runtrack.cli.render import Column, fitted_table, jsonable, time_text
from runtrack.cli.state import err_console, print_json, print_table, state_of

__all__ = ["check", "incidents", "register"]


def _state(incident: IncidentRecord) -> Text:
    return Text("open", style="bold red") if incident.is_open else Text("resolved", style="green")


COLUMNS: list[Column[IncidentRecord]] = [
    Column("id", lambda i: str(i.id), 5, justify="right"),
    Column("kind", lambda i: i.kind.value, 8),
    Column("job", lambda i: i.job, 24, wrap=True),
    Column("state", _state, 8),
    Column("opened", lambda i: time_text(i.opened_at), 20),
    Column(
        "resolved", lambda i: time_text(i.resolved_at) if i.resolved_at else "-", 20, optional=True
    ),
    Column("summary", lambda i: i.summary, 30, optional=True, wrap=True),
]


def check(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")] = False,
) -> None:
    """Check every job's expectations once: open and resolve incidents, send
    their notifications. Exit 0 when no incident is open, 1 otherwise."""
    with state_of(ctx).ledger() as ledger:
        result = ledger.check()
        delivered = ledger.deliver()
    if as_json:
        print_json(
            {
                "opened": jsonable(result.opened),
                "resolved": jsonable(result.resolved),
                "open": jsonable(result.open),
                "delivered": delivered,
            }
        )
    elif result.open:
        print_table(lambda width: fitted_table(COLUMNS, result.open, width))
    else:
        err_console().print("no open incident", markup=False)
    raise typer.Exit(1 if result.open else 0)


def incidents(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Option(help="Only this job's incidents.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open incidents.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")] = False,
) -> None:
    """List incidents, newest first (open and resolved)."""
    with state_of(ctx).ledger() as ledger:
        found = ledger.incidents(job, open_only=open_only, limit=limit)
    if as_json:
        print_json(jsonable(found))
    elif found:
        print_table(lambda width: fitted_table(COLUMNS, found, width))
    else:
        err_console().print("no incident", markup=False)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("incidents")(incidents)
