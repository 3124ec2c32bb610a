"""``runtrack carried JOB``: what a job owes (failed items and slices carried
to its next runs, and those given up), and ``--forget ID`` for an operator
who fixed one by hand."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from runtrack.cli.render import Column, fitted_table, jsonable, time_text
from runtrack.cli.state import err_console, print_json, print_table, state_of, user_name
from runtrack.models import Carried, CarriedItem, CarriedSlice, CarryState

__all__ = ["carried", "register"]

Entry = CarriedItem | CarriedSlice


def _what(entry: Entry) -> Text:
    if isinstance(entry, CarriedItem):
        where = f" @{entry.source}" if entry.source else ""
        return Text(f"item {entry.key}{where}")
    return Text(f"slice {time_text(entry.start)} .. {time_text(entry.end)}")


def _state(entry: Entry) -> Text:
    given_up = entry.state is CarryState.GIVEN_UP
    return Text(entry.state.value, style="bold red" if given_up else "dark_orange")


def _why(entry: Entry) -> str:
    text = entry.last_error if isinstance(entry, CarriedItem) else entry.reason
    return text or "-"


COLUMNS: list[Column[Entry]] = [
    Column("id", lambda e: str(e.id), 6, justify="right"),
    Column("what", _what, 36, wrap=True),
    Column("state", _state, 8),
    Column("attempts", lambda e: str(e.attempts), 8, justify="right"),
    Column("first run", lambda e: str(e.first_run), 9, justify="right", optional=True),
    Column("last error / reason", _why, 24, optional=True, wrap=True),
]


def carried(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="The job's key.")],
    forget: Annotated[
        int | None,
        typer.Option(help="Drop this entry (an id listed here): it was fixed by hand."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")] = False,
) -> None:
    """List what a job owes, oldest first: items and slices handed to its next
    runs, and those given up after too many attempts."""
    with state_of(ctx).ledger() as ledger:
        if forget is not None:
            ledger.forget_carried(job, forget, by=user_name())
        else:
            owed = ledger.carried(job)
    if forget is not None:
        if as_json:
            print_json({"job": job, "forgotten": forget})
        else:
            err_console().print(f"entry {forget} of {job} forgotten", markup=False)
        return
    _print(job, owed, as_json)


def _print(job: str, owed: Carried, as_json: bool) -> None:
    if as_json:
        print_json({"job": job, "items": jsonable(owed.items), "slices": jsonable(owed.slices)})
        return
    if not owed:
        err_console().print(f"{job} owes nothing", markup=False)
        return
    entries: list[Entry] = [*owed.items, *owed.slices]
    print_table(lambda width: fitted_table(COLUMNS, entries, width))


def register(app: typer.Typer) -> None:
    app.command("carried")(carried)
