"""``runtrack jobs``, ``providers``, ``pause`` and ``resume``."""

from __future__ import annotations

from typing import Annotated

import typer

from runtrack import vocabulary
from runtrack.cli.params import duration_option, instant_option, parse_instant
from runtrack.cli.render import jobs_table, jsonable, pauses_table, time_text
from runtrack.cli.state import err_console, print_json, print_table, state_of, user_name
from runtrack.models import PauseRecord
from runtrack.terminal import visible

__all__ = ["register"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")]
Wide = Annotated[bool, typer.Option("--wide", help="Every column, even wider than the terminal.")]


def jobs(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option(help="Only this provider's jobs.")] = None,
    wide: Wide = False,
    as_json: JsonFlag = False,
) -> None:
    """List jobs with their state: last run, last success, failure streak, watermark."""
    with state_of(ctx).ledger() as ledger:
        states = ledger.job_states(provider)
        health = {} if as_json else ledger.healths(provider)  # issue 18
    if as_json:
        print_json(jsonable({"data": [vocabulary.job(s) for s in states]}))
    elif not states:
        err_console().print("no jobs yet (a job is recorded by its first run)")
    else:
        print_table(lambda width: jobs_table(states, width, health), wide=wide)


def providers(ctx: typer.Context, wide: Wide = False, as_json: JsonFlag = False) -> None:
    """List providers: how many jobs each has, and whether it is paused."""
    with state_of(ctx).ledger() as ledger:
        found = ledger.providers()
    if as_json:
        print_json(jsonable({"data": [vocabulary.provider(p) for p in found]}))
    elif not found:
        err_console().print("no providers yet")
    else:
        print_table(lambda width: pauses_table(found, width), wide=wide)


def pause(
    ctx: typer.Context,
    provider: Annotated[str, typer.Argument(help="The provider to pause.")],
    reason: Annotated[str, typer.Option(help="Why (shown to operators).")],
    for_: Annotated[
        str | None,
        typer.Option("--for", callback=duration_option, help="How long: 30s, 15m, 2h, 1d."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(callback=instant_option, help="Until when (ISO 8601).")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who pauses (default: your user name).")] = None,
    new: Annotated[
        bool, typer.Option("--new", help="Pause a provider that no job uses yet.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Pause a provider: runners skip its jobs until the pause ends.

    A provider that no job uses is refused (a typo), unless --new."""
    if (for_ is None) == (until is None):
        raise typer.BadParameter("give exactly one of --for and --until", param_hint="--for")
    end = parse_instant(until) if until is not None else None
    with state_of(ctx).ledger(create=new) as ledger:
        record = ledger.pause(
            provider,
            for_=for_,
            until=end,
            reason=reason,
            by=by or user_name(),
            create=new,
        )
    _print_pause(record, as_json)


def _print_pause(record: PauseRecord, as_json: bool) -> None:
    if as_json:
        print_json(jsonable(vocabulary.pause(record)))
    else:
        err_console().print(
            visible(f"{record.provider} paused until {time_text(record.until)} UTC"), markup=False
        )


def resume(
    ctx: typer.Context,
    provider: Annotated[str, typer.Argument(help="The provider to resume.")],
    as_json: JsonFlag = False,
) -> None:
    """End a provider's pause (a no-op if it was not paused)."""
    with state_of(ctx).ledger() as ledger:
        was_paused = ledger.resume(provider)
    if as_json:
        print_json({"provider": provider, "resumed": was_paused})
    elif was_paused:
        err_console().print(visible(f"{provider} resumed"), markup=False)
    else:
        err_console().print(visible(f"{provider} was not paused"), markup=False)


def register(app: typer.Typer) -> None:
    app.command("jobs")(jobs)
    app.command("providers")(providers)
    app.command("pause")(pause)
    app.command("resume")(resume)
