"""Structured logging: the fields runtrack attaches, and formatters for them.

Every library log record about a run carries ``run_id``, ``job``,
``provider`` and ``status`` in ``extra`` (see :func:`run_fields`), under the
``runtrack`` logger hierarchy. The library never configures handlers (the
package adds a ``NullHandler``); applications do, for example with
:func:`configure_logging`, which the CLI's ``--log-format json|rich`` uses.

>>> import logging
>>> from runtrack.logs import configure_logging
>>> undo = configure_logging("json", logging.INFO)      # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from runtrack.terminal import json_safe

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["RUN_FIELDS", "JsonFormatter", "RunFieldsFormatter", "configure_logging", "run_fields"]

#: The structured fields every log record about a run carries.
RUN_FIELDS = ("run_id", "job", "provider", "status")

# Attributes every LogRecord has; anything else on a record came from ``extra``.
# uvicorn's ``color_message`` is the message again with terminal colour codes.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


class _RunLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def job(self) -> str: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def status(self) -> str: ...


def run_fields(run: _RunLike, status: str | None = None) -> dict[str, Any]:
    """The ``extra`` of a log record about ``run`` (a ``Run`` or ``RunRecord``);
    ``status`` overrides the run's own (e.g. the status it is moving to)."""
    return {
        "run_id": run.id,
        "job": run.job,
        "provider": run.provider,
        "status": str(status if status is not None else run.status),
    }


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message,
    the run fields when present, any other ``extra`` and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extras = _extras(record)
        for name in RUN_FIELDS:  # first, in a fixed order, for people reading raw lines
            if name in extras:
                data[name] = extras.pop(name)
        data.update(extras)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json_safe(json.dumps(data, default=str, ensure_ascii=False))


class RunFieldsFormatter(logging.Formatter):
    """The message followed by the run fields present, as ``key=value``
    (for human-readable handlers such as Rich's)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        pairs = [
            f"{name}={getattr(record, name)}"
            for name in RUN_FIELDS
            if getattr(record, name, None) is not None
        ]
        return f"{text} [{' '.join(pairs)}]" if pairs else text


def configure_logging(
    format: Literal["json", "rich"] = "rich",
    level: int | str = logging.INFO,
    *,
    stream: IO[str] | None = None,
    console: Console | None = None,
) -> Callable[[], None]:
    """Send log records at ``level`` or above to stderr (or ``stream``) as JSON
    lines or through Rich; returns a function that undoes it.

    For applications (the CLI, a runner process), never called by the library.
    """
    if format not in ("json", "rich"):
        raise ValueError(f"format: got {format!r} (allowed: json, rich)")
    handler: logging.Handler
    if format == "json":
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        from rich.console import Console

        from runtrack.terminal import VisibleRichHandler

        handler = VisibleRichHandler(
            console=console or Console(file=stream, stderr=stream is None),
            show_path=False,
            rich_tracebacks=True,
            tracebacks_show_locals=False,  # locals can hold database passwords
        )
        handler.setFormatter(RunFieldsFormatter("%(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()

    return undo
