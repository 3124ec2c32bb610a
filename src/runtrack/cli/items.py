"""``runtrack items`` and ``groups``: what each unit of work of a run did."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from runtrack import vocabulary
from runtrack.cli.render import Column, fitted_table, jsonable, time_text
from runtrack.cli.state import err_console, print_json, print_table, state_of
from runtrack.models import GroupSummary, ItemRecord, ItemStatus

__all__ = ["register"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")]
Wide = Annotated[bool, typer.Option("--wide", help="Every column, even wider than the terminal.")]
RunId = Annotated[int, typer.Argument(min=1, help="The run's id.")]

ITEM_COLUMNS: list[Column[ItemRecord]] = [
    Column("id", lambda i: str(i.id), 6, justify="right"),
    Column("key", lambda i: i.key, 24, grow=True),
    Column("status", lambda i: i.status.value, 9),
    Column("recorded (UTC)", lambda i: time_text(i.recorded_at), 19),
    Column("group", lambda i: i.group or "-", 14, optional=True),
    Column("source", lambda i: i.source or "-", 12, optional=True),
    Column("error", lambda i: i.error or "", 24, optional=True, wrap=True),
]

GROUP_COLUMNS: list[Column[GroupSummary]] = [
    Column("group", lambda g: g.group, 24, grow=True),
    Column("found", lambda g: Text("yes", "green") if g.found else Text("no", "red"), 5),
    Column("found in", lambda g: ", ".join(g.found_in) or "-", 16, wrap=True),
    Column(
        "items by status",
        lambda g: " ".join(f"{k}={v}" for k, v in sorted(g.counts.items())),
        24,
        optional=True,
        wrap=True,
    ),
]


def items(
    ctx: typer.Context,
    run_id: RunId,
    status: Annotated[ItemStatus | None, typer.Option(help="Only this status.")] = None,
    group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Items per page.")] = 100,
    cursor: Annotated[
        str | None, typer.Option(help="The next_cursor of the previous page.")
    ] = None,
    wide: Wide = False,
    as_json: JsonFlag = False,
) -> None:
    """List a run's items in recording order, one page at a time."""
    with state_of(ctx).ledger() as ledger:
        page = ledger.list_items(run_id, status=status, group=group, limit=limit, cursor=cursor)
    if as_json:
        data = (vocabulary.item(i) for i in page.items)
        print_json(jsonable(vocabulary.cursor_page(data, page.next_cursor)))
    elif not page.items:
        err_console().print("no items match")
    else:
        print_table(lambda width: fitted_table(ITEM_COLUMNS, page.items, width), wide=wide)
        if page.next_cursor:
            err_console().print(f"more: --cursor {page.next_cursor}")


def groups(
    ctx: typer.Context, run_id: RunId, wide: Wide = False, as_json: JsonFlag = False
) -> None:
    """List a run's item groups: counts by status and where each was found."""
    with state_of(ctx).ledger() as ledger:
        ledger.get_run(run_id)  # an unknown run is an error, not an empty list
        found = ledger.group_summary(run_id)
    if as_json:
        print_json(jsonable({"data": [vocabulary.group(g) for g in found]}))
    elif not found:
        err_console().print(f"run {run_id} has no item groups")
    else:
        print_table(lambda width: fitted_table(GROUP_COLUMNS, found, width), wide=wide)


def register(app: typer.Typer) -> None:
    app.command("items")(items)
    app.command("groups")(groups)
