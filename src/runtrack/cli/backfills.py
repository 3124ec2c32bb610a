"""``runtrack backfill JOB --from T --to T --every 1d``, ``runtrack backfill
resume ID``, ``runtrack backfill cancel ID`` and ``runtrack backfills``
(issue 17). ``--json`` writes the API's shape (:func:`runtrack.vocabulary.backfill`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from runtrack import inputs, vocabulary
from runtrack.backfills import BackfillRecord, BackfillState
from runtrack.cli.render import Column, duration_text, fitted_table, jsonable, time_text
from runtrack.cli.state import err_console, print_json, print_table, state_of, user_name
from runtrack.errors import InvalidInput

__all__ = ["register"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")]
ACTIONS = ("resume", "cancel")
STYLE = {
    BackfillState.RUNNING: "cyan",
    BackfillState.DONE: "green",
    BackfillState.FAILED: "bold red",
    BackfillState.CANCELLED: "yellow",
}


def _progress(b: BackfillRecord) -> str:
    p = b.progress
    text = f"{p.done}/{b.windows} done, {p.failed} failed, {p.queued} queued, {p.running} running"
    return text + (f", {p.missing} missing" if p.missing else "")


COLUMNS: list[Column[BackfillRecord]] = [
    Column("id", lambda b: str(b.id), 5, justify="right"),
    Column("job", lambda b: b.job, 24, wrap=True),
    Column("state", lambda b: Text(b.state.value, style=STYLE[b.state]), 9),
    Column("from", lambda b: time_text(b.start), 20),
    Column("to", lambda b: time_text(b.end), 20),
    Column("every", lambda b: duration_text(b.every), 6, optional=True),
    Column("progress", _progress, 30, wrap=True),
    Column("by", lambda b: b.triggered_by, 12, optional=True),
]


def backfill(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(metavar="JOB | resume ID | cancel ID", help="The job to backfill.")
    ],
    backfill_id: Annotated[
        int | None, typer.Argument(metavar="[ID]", min=1, help="The backfill to resume or cancel.")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Start, included: ISO 8601 (naive: UTC) or an age (60d)."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="End, excluded: ISO 8601 or an age (1d: a day ago)."),
    ] = None,
    every: Annotated[str, typer.Option(help="Each window's length: 1h, 1d, 1w.")] = "1d",
    max_parallel: Annotated[
        int | None, typer.Option(min=1, help="At most this many of its runs at once.")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who asks (default: user:<your name>).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue one run of JOB per window of [--from, --to) (behind triggers and
    ticks; never moves the watermark); or resume (queue again the failed,
    cancelled, expired and missing windows) or cancel (its queued runs) a
    backfill by id."""
    who = by or f"user:{user_name()}"
    with state_of(ctx).ledger() as ledger:
        if target in ACTIONS and backfill_id is not None:
            if target == "resume":
                record = ledger.resume_backfill(backfill_id, by=who)
            else:
                record = ledger.cancel_backfill(backfill_id, by=who)
            said = "resumed" if target == "resume" else "cancelled"
        else:
            if backfill_id is not None:
                raise typer.BadParameter(f"{target} {backfill_id}: give resume ID or cancel ID")
            if from_ is None or to is None:
                raise InvalidInput("--from/--to", "give both ends of the range", "--from T --to T")
            now = ledger.now()
            start = inputs.time_or_age("--from", from_, now)
            end = inputs.time_or_age("--to", to, now)
            record = ledger.backfill(
                target, start, end, every=every, by=who, max_parallel=max_parallel
            )
            said = f"{record.windows} window(s) queued"
    if as_json:
        print_json(jsonable(vocabulary.backfill(record)))
    else:
        err_console().print(
            f"backfill {record.id} of {record.job}: {said} ({_progress(record)})", markup=False
        )


def backfills(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Option(help="Only this job's backfills.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List backfills, newest first, with their progress."""
    with state_of(ctx).ledger() as ledger:
        found = ledger.backfills(job=job, limit=limit)
    if as_json:
        print_json(jsonable({"data": [vocabulary.backfill(b) for b in found]}))
    elif found:
        print_table(lambda width: fitted_table(COLUMNS, found, width))
    else:
        err_console().print("no backfill", markup=False)


def register(app: typer.Typer) -> None:
    app.command("backfill")(backfill)
    app.command("backfills")(backfills)
