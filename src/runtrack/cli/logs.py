"""Logging for the command line: the CLI configures handlers, the library never does.

``rich`` writes readable lines to stderr; ``json`` writes one JSON object per
line (for log shippers) carrying the structured fields the library attaches
(``run_id``, ``job``, ``provider``, ``status``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from enum import StrEnum

from rich.logging import RichHandler

from runtrack.cli.state import err_console
from runtrack.logs import JsonFormatter

__all__ = ["JsonFormatter", "LogFormat", "StderrHandler", "setup_logging"]


class LogFormat(StrEnum):
    """How log lines are written."""

    rich = "rich"
    json = "json"


class StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time of the record."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def setup_logging(fmt: LogFormat, level: int) -> Callable[[], None]:
    """Send log records at ``level`` or above to stderr in ``fmt``; returns
    the function that undoes it."""
    handler: logging.Handler
    if fmt is LogFormat.json:
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
    else:
        handler = RichHandler(
            console=err_console(),
            show_path=False,
            rich_tracebacks=True,
            tracebacks_show_locals=False,  # locals can hold database passwords
        )
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(previous_level)

    return undo
