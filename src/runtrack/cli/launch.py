"""The console script's first step: ``runtrack exec`` without the CLI framework.

A cron line that wraps a command in ``runtrack exec`` pays runtrack's
startup every time, and Typer (with pydantic and Rich) costs more to import
than the ledger itself. So a plain ``runtrack [--database-url URL] exec JOB
[--provider P] [--param K=V ...] [--timeout D] [--concurrency N] [--on-partial P] -- COMMAND
...`` is read here, with the same checks as the Typer command
(:mod:`runtrack.cli.exec`), and run without importing Typer. Anything else
(another command, ``--help``, a global option other than ``--database-url``,
a bad value, a ledger that cannot be opened, a busy job) goes to the full
CLI, which parses again and reports errors with the usual messages and exit
codes: nothing has happened yet at that point.
"""

from __future__ import annotations

import logging
import sys

from runtrack import inputs
from runtrack.cli.args import check_duration, parse_params
from runtrack.errors import RuntrackError

__all__ = ["ExecArgs", "check_duration", "main", "parse_exec", "parse_params"]

_VALUED = {"--provider", "--param", "--timeout", "--concurrency", "--on-partial"}


class ExecArgs:
    """The parts of a ``runtrack exec`` command line."""

    def __init__(self) -> None:
        self.database_url: str | None = None
        self.job: str | None = None
        self.options: dict[str, list[str]] = {name: [] for name in _VALUED}
        self.argv: list[str] = []


def parse_exec(args: list[str]) -> ExecArgs | None:
    """The exec command line in ``args`` (after the program name), or None
    if it is anything else or anything unusual."""
    found = ExecArgs()
    words = iter(args)
    for word in words:
        if word == "exec":
            break
        name, eq, value = word.partition("=")
        if name != "--database-url":
            return None
        found.database_url = value if eq else next(words, None)
        if found.database_url is None:
            return None
    else:
        return None
    for word in words:
        if word == "--":
            found.argv = list(words)
            break
        name, eq, value = word.partition("=")
        if name in _VALUED:
            given = value if eq else next(words, None)
            if given is None:
                return None
            found.options[name].append(given)
        elif word.startswith("-") or found.job is not None:
            return None
        else:
            found.job = word
    return found if found.job is not None and found.argv else None


def _request(found: ExecArgs) -> object:
    """The ExecRequest, or None if a value is bad (the full CLI says why)."""
    from runtrack.exec import ExecRequest
    from runtrack.models import OnPartial

    options = found.options
    single = ("--provider", "--timeout", "--concurrency", "--on-partial")
    if any(len(options[name]) > 1 for name in single):
        return None
    try:
        concurrency = int(options["--concurrency"][0]) if options["--concurrency"] else 1
        return ExecRequest(
            job=inputs.key("job", found.job),
            argv=tuple(found.argv),
            provider=options["--provider"][0] if options["--provider"] else None,
            params=parse_params(options["--param"]),
            timeout=check_duration(options["--timeout"][0]) if options["--timeout"] else None,
            concurrency=inputs.positive_int("concurrency", concurrency, limit=1000),
            on_partial=inputs.choice("on_partial", options["--on-partial"][0], OnPartial)
            if options["--on-partial"]
            else OnPartial.CARRY,
        )
    except ValueError:  # InvalidInput is a ValueError too
        return None


def _quick_exec(args: list[str]) -> int | None:
    """Run ``runtrack exec`` here if the command line is a plain one;
    None to hand it to the full CLI (nothing was run)."""
    found = parse_exec(args)
    if found is None:
        return None
    request = _request(found)
    if request is None:
        return None
    from runtrack.config import Settings
    from runtrack.exec import ExecRequest, execute
    from runtrack.ledger import Ledger

    assert isinstance(request, ExecRequest)
    try:
        ledger = Ledger.from_settings(Settings.from_env(database_url=found.database_url))
    except RuntrackError:
        return None
    with ledger:
        _log_warnings()
        try:
            run = ledger.start_run(
                request.job,
                provider=request.provider,
                params=request.params or None,
                concurrency=request.concurrency,
                on_partial=request.on_partial,
            )
        except RuntrackError:  # a busy job, a bad value: the full CLI says it
            return None
        return execute(ledger, request, run=run)


def _log_warnings() -> None:
    # What the full CLI's log setup does for exec: runtrack's warnings (a
    # failed heartbeat, a lost lease) as lines on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("runtrack: %(message)s"))
    logger = logging.getLogger("runtrack")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def main() -> None:
    """The ``runtrack`` console script."""
    code = _quick_exec(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from runtrack.cli.root import main as full_cli

    full_cli()
