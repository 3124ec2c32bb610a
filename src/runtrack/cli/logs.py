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

from runtrack.cli.state import err_console
from runtrack.logs import JsonFormatter
from runtrack.terminal import VisibleRichHandler

__all__ = ["JsonFormatter", "LogFormat", "StderrHandler", "setup_logging"]

#: Loggers shown at the command's level; others only from WARNING (alembic
#: and SQLAlchemy are chatty at INFO) unless ``--debug``.
OURS = ("runtrack", "uvicorn")


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
    """Send runtrack's (and uvicorn's) records at ``level`` or above, and
    everyone else's warnings, to stderr in ``fmt``; returns the undo."""
    handler: logging.Handler
    if fmt is LogFormat.json:
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
    else:
        handler = VisibleRichHandler(
            console=err_console(),
            show_path=False,
            rich_tracebacks=True,
            tracebacks_show_locals=False,  # locals can hold database passwords
        )
    root = logging.getLogger()
    ours = [logging.getLogger(name) for name in OURS]
    previous = [(logger, logger.level) for logger in (root, *ours)]
    root.addHandler(handler)
    root.setLevel(min(level, logging.WARNING))
    for logger in ours:
        logger.setLevel(level)

    def undo() -> None:
        root.removeHandler(handler)
        for logger, old_level in previous:
            logger.setLevel(old_level)

    return undo
