"""What every command shares: the global options, the ledger they open, and
the two output streams.

Data goes to stdout (a Rich table, or pure JSON with ``--json``); everything
meant for a person reading along (progress, notices, errors) goes to stderr,
so ``runtrack runs --json | jq`` always gets parseable input.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from runtrack.cli.render import UNLIMITED, Fitted
from runtrack.config import Settings
from runtrack.errors import LedgerMissing
from runtrack.ledger import Ledger
from runtrack.store.dialects import sqlite_file
from runtrack.terminal import json_safe

__all__ = [
    "State",
    "err_console",
    "out_console",
    "print_json",
    "print_table",
    "state_of",
    "user_name",
]


@dataclass
class State:
    """The root command's options, filled in by its callback."""

    database_url: str | None = None
    debug: bool = False

    def settings(self) -> Settings:
        """Settings from ``RUNTRACK_*``, with ``--database-url`` on top."""
        return Settings.from_env(database_url=self.database_url)

    @contextmanager
    def ledger(self, *, migrate: bool = True, create: bool = False) -> Iterator[Ledger]:
        """Open the ledger for one command and close it afterwards.

        Only a command that means to create a ledger (``create``) may open a
        SQLite file that does not exist: opening creates it, and a misspelt
        path would otherwise show an empty ledger as if the data were gone."""
        settings = self.settings()
        path = sqlite_file(settings.database_url)
        if not create and path is not None and not os.path.exists(path):
            raise LedgerMissing(os.path.abspath(path))
        with Ledger.from_settings(settings, migrate=migrate) as ledger:
            yield ledger


def state_of(ctx: typer.Context) -> State:
    """The shared state, wherever in the command tree ``ctx`` is."""
    found = ctx.find_object(State)
    if found is None:  # invoked without the root group (a test calling a command)
        found = ctx.ensure_object(State)
    return found


def user_name() -> str:
    """Who is at the keyboard, for ``cancelled by`` / ``paused by``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli"


def out_console() -> Console:
    """Rich output meant as the command's result (stdout)."""
    return Console(highlight=False, soft_wrap=False)


def err_console() -> Console:
    """Rich output for a person watching (stderr): progress, notices."""
    return Console(stderr=True, highlight=False)


def print_json(value: Any) -> None:
    """Write ``value`` as JSON on stdout, and nothing else."""
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(json_safe(text) + "\n")
    sys.stdout.flush()


def print_table(layout: Callable[[int | None], Fitted], *, wide: bool = False) -> None:
    """Print a table on stdout. On a terminal it fits its width, and the
    columns that did not fit are named in one dim line on stderr; piped (or
    with ``--wide``) every column is shown and nothing is cut."""
    console = out_console()
    whole = wide or not console.is_terminal
    fitted = layout(None if whole else console.width)
    if whole:
        console = Console(highlight=False, soft_wrap=False, width=UNLIMITED)
    console.print(fitted.table)
    if fitted.hidden:
        err_console().print(
            f"not shown at {console.width} columns: {', '.join(fitted.hidden)} (--wide shows all)",
            style="dim",
            markup=False,
            soft_wrap=True,
        )
