"""Stored text on a terminal: control characters shown, never sent.

Job keys, pause reasons, error messages, stacks, params and request paths are
written by whoever can reach the ledger or the API. Sent raw to a terminal,
``ESC[2J`` clears it and other sequences retitle the window, rewrite earlier
lines or worse. Every CLI rendering and every log line for a terminal passes
such text through :func:`visible`; JSON output escapes the same characters
(:func:`json_safe`), so piping it to a terminal is harmless too.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import ConsoleRenderable
    from rich.traceback import Trace, Traceback

__all__ = ["VisibleRichHandler", "json_safe", "visible"]  # noqa: F822 (made by __getattr__)

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI on
# some terminals), and the bidirectional overrides that reorder what is shown.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# json.dumps escapes C0 itself; the rest pass through with ensure_ascii=False.
_JSON_HIDDEN = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with each control character but newline and tab written as
    an escape (``ESC`` becomes the four characters ``\\x1b``)."""
    return _HIDDEN.sub(_escape, text)


def json_safe(dumped: str) -> str:
    """A JSON document with DEL, C1 controls and bidirectional overrides
    written as ``\\uXXXX`` escapes (the same JSON value)."""
    return _JSON_HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def __getattr__(name: str) -> Any:
    # Rich (and the pygments it brings) is built on first use: the library
    # and ``runtrack exec`` import this module without ever logging to a
    # terminal through Rich.
    if name == "VisibleRichHandler":
        handler = _rich_handler()
        globals()[name] = handler
        return handler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _rich_handler() -> type[logging.Handler]:
    from rich.logging import RichHandler

    class VisibleRichHandler(RichHandler):
        """Rich's log handler, showing control characters in messages and in
        exception messages instead of sending them to the terminal. Piped or
        redirected (a service's log file), a record without a traceback is
        one plain line, every line with its time: Rich's layout pads it to
        80 columns, wraps it, leaves repeated times out, and costs half a
        millisecond a line (a busy worker logs a line per run)."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info or self.console.is_terminal:
                super().emit(record)
                return
            try:
                when = time.strftime("[%x %X]", time.localtime(record.created))
                lines = visible(self.format(record)).replace("\n", "\n" + " " * (len(when) + 10))
                out = self.console.file
                out.write(f"{when} {record.levelname:<8} {lines}\n")
                out.flush()
            except Exception:
                self.handleError(record)

        def render_message(self, record: logging.LogRecord, message: str) -> ConsoleRenderable:
            return super().render_message(record, visible(message))

        def render(
            self,
            *,
            record: logging.LogRecord,
            traceback: Traceback | None,
            message_renderable: ConsoleRenderable,
        ) -> ConsoleRenderable:
            if traceback is not None:
                _show_controls(traceback.trace)
            return super().render(
                record=record, traceback=traceback, message_renderable=message_renderable
            )

    return VisibleRichHandler


def _show_controls(trace: Trace) -> None:
    for stack in trace.stacks:
        stack.exc_value = visible(stack.exc_value)
        stack.notes = [visible(note) for note in getattr(stack, "notes", [])]
        for inner in getattr(stack, "exceptions", []):  # exception groups
            _show_controls(inner)
