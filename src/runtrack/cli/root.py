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
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from runtrack import __version__
from runtrack.cli import backfills as backfills_cli
from runtrack.cli import carried, items, maintenance, providers, runs, serving
from runtrack.cli import exec as exec_cli
from runtrack.cli import incidents as incidents_cli
from runtrack.cli import queue as queue_cli
from runtrack.cli import workers as workers_cli
from runtrack.cli.logs import LogFormat, setup_logging
from runtrack.cli.state import State
from runtrack.errors import ConfigurationError, InvalidInput, RuntrackError
from runtrack.terminal import visible

__all__ = ["EXIT_CODES", "app", "exit_code_for", "main", "plain_words"]

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


def _flags_as_flags() -> None:
    """Typer's help gives on/off flags a type column (``--debug <bool>``) as if
    they took a value; show them as the plain flags they are."""
    option = typer.core.TyperOption
    shown = option.display_type_rich

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    option.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_as_flags()

#: Validation-library phrases in click's messages, and how a person says them.
_PLAIN_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        (r"Value error, ", ""),
        (r"Input should be greater than or equal to (\S+)", r"must be at least \1"),
        (r"Input should be less than or equal to (\S+)", r"must be at most \1"),
        (r"Input should be greater than (\S+)", r"must be more than \1"),
        (r"Input should be less than (\S+)", r"must be less than \1"),
        (
            r"Input should be a valid integer, unable to parse string as an integer",
            "must be a whole number",
        ),
        (r"Input should be a valid number, unable to parse string as a number", "must be a number"),
        (r"Input should be ", "must be "),
    )
)


def plain_words(message: str) -> str:
    """``message`` without the validation library's wording."""
    for pattern, words in _PLAIN_WORDS:
        message = pattern.sub(words, message)
    return message


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
        message = plain_words(exc.format_message())  # type: ignore[attr-defined]
        text = f"{command}: {message} (see '{command} --help')"
    elif isinstance(exc, ClickException):
        text = f"runtrack: {exc.format_message()}"  # type: ignore[attr-defined]
    elif isinstance(exc, RuntrackError):
        text = f"runtrack: {exc}"
    elif isinstance(exc, typer.Abort | KeyboardInterrupt):
        text = "runtrack: interrupted"
    else:
        text = f"runtrack: unexpected {type(exc).__name__}: {exc} (run with --debug for details)"
    return visible(" ".join(text.split()))


#: Global options that may also follow the command (``runtrack demo --database-url ...``).
_MOVABLE = ("--database-url",)


def _global_options_first(args: list[str]) -> list[str]:
    """``args`` with the movable global options placed before the command,
    where click expects them; nothing after ``--`` moves."""
    front: list[str] = []
    rest: list[str] = []
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            rest += [token, *tokens]
            break
        name = token.partition("=")[0]
        if name in _MOVABLE:
            front.append(token)
            if "=" not in token:
                value = next(tokens, None)
                if value is not None:
                    front.append(value)
        else:
            rest.append(token)
    return front + rest


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
        given = list(sys.argv[1:] if args is None else args)
        code = self._run(
            _global_options_first(given), prog_name or "runtrack", complete_var, state, extra
        )
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
                sys.stderr.write(visible("".join(traceback.format_exception(exc))))
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
            help="The ledger's database (default sqlite:///runtrack.db); "
            "also accepted after the command.",
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
    """Global options; they go before the command (``runtrack --debug runs``);
    --database-url may also follow it (``runtrack demo --database-url URL``)."""
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
items.register(app)
providers.register(app)
carried.register(app)
maintenance.register(app)
serving.register(app)
exec_cli.register(app)
incidents_cli.register(app)  # issue 18
queue_cli.register(app)  # issue 17
workers_cli.register(app)  # issue 17
backfills_cli.register(app)  # issue 17


def main() -> None:
    """The console script's entry point."""
    app(prog_name="runtrack")
