"""What every command shares: the global options, the ledger they open, and
the two output streams.

Data goes to stdout (a Rich table, or pure JSON with ``--json``); everything
meant for a person reading along (progress, notices, errors) goes to stderr,
so ``runtrack runs --json | jq`` always gets parseable input.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from runtrack.config import Settings
from runtrack.ledger import Ledger

__all__ = ["State", "err_console", "out_console", "print_json", "state_of", "user_name"]


@dataclass
class State:
    """The root command's options, filled in by its callback."""

    database_url: str | None = None
    debug: bool = False

    def settings(self) -> Settings:
        """Settings from ``RUNTRACK_*``, with ``--database-url`` on top."""
        return Settings.from_env(database_url=self.database_url)

    @contextmanager
    def ledger(self, *, migrate: bool = True) -> Iterator[Ledger]:
        """Open the ledger for one command and close it afterwards."""
        with Ledger.from_settings(self.settings(), migrate=migrate) as ledger:
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
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    sys.stdout.flush()
