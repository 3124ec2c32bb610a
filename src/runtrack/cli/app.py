"""The ``runtrack`` command: the root group, its global options, and the one
table that turns exceptions into exit codes.

Exit codes: 0 success; 1 the operation failed (a run that does not exist or
cannot be cancelled, a busy job, an unreachable database); 2 a usage error
(an unknown option, a bad value, a bad configuration). An error is one line
on stderr; ``--debug`` adds the traceback, which never shows local variables
(they can hold database passwords).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from runtrack import __version__
from runtrack.cli import maintenance, providers, runs, serving
from runtrack.cli.logs import LogFormat, setup_logging
from runtrack.cli.state import State
from runtrack.errors import ConfigurationError, InvalidInput, RuntrackError

__all__ = ["EXIT_CODES", "app", "exit_code_for", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _click_class(name: str) -> type[Exception]:
    # click's exception classes, whether Typer vendors click or imports it.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


UsageError = _click_class("UsageError")
ClickException = _click_class("ClickException")

#: The first matching class decides the exit code.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (UsageError, EXIT_USAGE),
    (InvalidInput, EXIT_USAGE),
    (ConfigurationError, EXIT_USAGE),
    (RuntrackError, EXIT_FAILED),
    (ClickException, EXIT_FAILED),
    (typer.Abort, EXIT_INTERRUPTED),
    (KeyboardInterrupt, EXIT_INTERRUPTED),
)

# Commands that run for a long time and whose INFO lines an operator wants.
_CHATTY = {"worker", "serve"}


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an exception that ended a command."""
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_FAILED


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, UsageError):
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "runtrack"
        text = f"{command}: {exc.format_message()} (see '{command} --help')"  # type: ignore[attr-defined]
    elif isinstance(exc, ClickException):
        text = f"runtrack: {exc.format_message()}"  # type: ignore[attr-defined]
    elif isinstance(exc, RuntrackError):
        text = f"runtrack: {exc}"
    elif isinstance(exc, typer.Abort | KeyboardInterrupt):
        text = "runtrack: interrupted"
    else:
        text = f"runtrack: unexpected {type(exc).__name__}: {exc} (run with --debug for details)"
    return " ".join(text.split())


class RuntrackGroup(TyperGroup):
    """The root group; it turns every failure into one line and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        state = State()
        code = self._run(args, prog_name or "runtrack", complete_var, state, extra)
        if not standalone_mode:
            return code
        sys.exit(code)

    def _run(
        self,
        args: Sequence[str] | None,
        prog_name: str,
        complete_var: str | None,
        state: State,
        extra: dict[str, Any],
    ) -> int:
        try:
            result = super().main(
                args, prog_name, complete_var, standalone_mode=False, obj=state, **extra
            )
        except (Exception, KeyboardInterrupt) as exc:
            if state.debug and not isinstance(exc, UsageError):
                traceback.print_exception(exc, file=sys.stderr)
            typer.echo(_one_line(exc), err=True)
            return exit_code_for(exc)
        return result if isinstance(result, int) else EXIT_OK


app = typer.Typer(
    name="runtrack",
    cls=RuntrackGroup,
    help="The run ledger for data-ingestion jobs: inspect and control runs, "
    "jobs and providers; serve the API and dashboard; run workers; try the demo.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"runtrack {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="RUNTRACK_DATABASE_URL",
            show_envvar=True,
            metavar="URL",
            help="The ledger's database (default sqlite:///runtrack.db).",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Debug logs, and tracebacks on errors.")
    ] = False,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="How log lines are written to stderr.")
    ] = LogFormat.rich,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Global options; they go before the command: ``runtrack --debug runs``."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    state = ctx.ensure_object(State)
    state.database_url = database_url
    state.debug = debug
    level = logging.DEBUG if debug else logging.WARNING
    if ctx.invoked_subcommand in _CHATTY and not debug:
        level = logging.INFO
    ctx.call_on_close(setup_logging(log_format, level))


runs.register(app)
providers.register(app)
maintenance.register(app)
serving.register(app)


def main() -> None:
    """The console script's entry point."""
    app(prog_name="runtrack")
