"""``runtrack exec JOB [options] -- COMMAND [ARGS...]``: one run around a command.

Exits with the command's own exit code (128 + N if signal N killed it), 75
(EX_TEMPFAIL) if the job is busy, and the usual 1 / 2 if runtrack itself
could not start (database unreachable, bad option) -- then the command is not run.
A plain command line is run by :mod:`runtrack.cli.launch` without Typer (for
startup time); this command is the definition, and handles everything else.
"""

from __future__ import annotations

from typing import Annotated

import typer

from runtrack import inputs
from runtrack.cli import args
from runtrack.cli.state import state_of
from runtrack.errors import JobBusy
from runtrack.exec import ExecRequest, execute
from runtrack.models import OnPartial
from runtrack.terminal import visible

__all__ = ["EXIT_BUSY", "exec_command", "parse_params", "register", "strict_duration"]

EXIT_BUSY = 75  # EX_TEMPFAIL: cron and supervisors read it as "try again later"


def strict_duration(value: str | None) -> str | None:
    """Check a ``--timeout`` value: a number with its unit (``10m``)."""
    if value is not None:
        try:
            args.check_duration(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def parse_params(values: list[str] | None) -> dict[str, str]:
    """``--param K=V`` options as a dict; each key once."""
    try:
        return args.parse_params(values or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--param'") from None


def exec_command(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(metavar="JOB", help="The job's key.", show_default=False)],
    command: Annotated[
        list[str],
        typer.Argument(
            metavar="-- COMMAND [ARGS]...",
            help="The command and its arguments, after --.",
            show_default=False,
        ),
    ],
    provider: Annotated[str | None, typer.Option(help="The job's provider.")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", metavar="KEY=VALUE", help="A run parameter (repeatable)."),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            callback=strict_duration,
            metavar="DURATION",
            help="Stop the command after this long (10m, 2h): SIGTERM, then SIGKILL "
            "after the cancel grace; the run ends failed / timeout.",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=1000, help="Active runs the job may have at once.")
    ] = 1,
    on_partial: Annotated[
        OnPartial,
        typer.Option(
            help="A partial end (the command reported errors): carry its failed items "
            "to the next runs, hold the watermark, or advance and forget them."
        ),
    ] = OnPartial.CARRY,
) -> int:
    """Run COMMAND as one run of JOB and exit with its exit code.

    The command reports through lines on its stdout, which are consumed:
    ::runtrack count NAME [N], set NAME VALUE, item KEY STATUS [GROUP] [SOURCE],
    progress DONE [TOTAL], error MESSAGE, note TEXT, checkpoint JSON. It gets
    RUNTRACK_RUN_ID, RUNTRACK_JOB, RUNTRACK_WINDOW_START, RUNTRACK_WINDOW_END
    and RUNTRACK_CHECKPOINT in its environment. Exit 75 if the job is busy.
    """
    request = ExecRequest(
        job=inputs.key("job", job),
        argv=tuple(command),
        provider=provider,
        params=parse_params(param),
        timeout=None if timeout is None else args.check_duration(timeout),
        concurrency=concurrency,
        on_partial=on_partial,
    )
    with state_of(ctx).ledger() as ledger:
        try:
            return execute(ledger, request)
        except JobBusy as busy:
            typer.echo(visible(f"runtrack: {busy}"), err=True)
            return EXIT_BUSY


def register(app: typer.Typer) -> None:
    app.command(
        "exec",
        # Options go before the --; everything after it is the command's.
        context_settings={"help_option_names": ["-h", "--help"]},
    )(exec_command)
