"""The line protocol a command speaks on its stdout to report to its run.

A line that starts with ``::runtrack `` is a report, consumed by ``runtrack
exec``; every other byte passes through unchanged. Everything here is pure:
:class:`StdoutFilter` splits a byte stream into pass-through chunks and
report lines, :func:`parse` turns one report line into a :class:`Report` or
raises :class:`Malformed` saying what was wrong and what is allowed.

::

    ::runtrack count NAME [N]
    ::runtrack set NAME VALUE
    ::runtrack item KEY STATUS [GROUP] [SOURCE]
    ::runtrack progress DONE [TOTAL]
    ::runtrack error MESSAGE
    ::runtrack note TEXT
    ::runtrack checkpoint JSON
    ::runtrack slice START END [REASON]

``slice`` reports a slice ``[START, END)`` of the window the command could not
fetch (ISO 8601 times; naive ones are UTC), as ``run.failed_slice`` does: the
run ends ``partial`` and, under ``on_partial="carry"``, the slice is owed to
the job's next runs (a carried slice listed in ``RUNTRACK_CARRIED`` and
reported again with the same ends counts one attempt more).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runtrack import inputs
from runtrack.errors import InvalidInput
from runtrack.models import ItemStatus

__all__ = ["COMMANDS", "PREFIX", "Malformed", "Piece", "Report", "StdoutFilter", "parse"]

PREFIX = b"::runtrack"
#: A report line longer than this is not a report: it passes through.
MAX_REPORT = 1 << 20
COMMANDS = ("count", "set", "item", "progress", "error", "note", "checkpoint", "slice")
_USAGE = {
    "count": "count NAME [N]",
    "set": "set NAME VALUE",
    "item": "item KEY STATUS [GROUP] [SOURCE]",
    "progress": "progress DONE [TOTAL]",
    "error": "error MESSAGE",
    "note": "note TEXT",
    "checkpoint": "checkpoint JSON",
    "slice": "slice START END [REASON]",
}


class Malformed(ValueError):
    """A report line that cannot be applied; it passes through, with a warning."""


@dataclass(frozen=True, slots=True)
class Report:
    """One parsed report: the command and its checked arguments."""

    command: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of the stdout stream: bytes to pass through, or a report line
    (``report=True``, with its line ending, so that a malformed one passes
    through unchanged)."""

    data: bytes
    report: bool = False


def _is_report_line(line: bytes) -> bool:
    return line.startswith(PREFIX) and (len(line) == len(PREFIX) or line[len(PREFIX)] in b" \t\r")


def _could_become_report(start: bytes) -> bool:
    """Whether a line that has only begun may still turn out to be a report."""
    return PREFIX.startswith(start) or _is_report_line(start)


class StdoutFilter:
    """Splits the command's stdout into pass-through bytes and report lines.

    Bytes are released as soon as they cannot belong to a report: a line that
    does not start with ``::runtrack`` is passed on before its newline arrives
    (a prompt is shown at once); only a line that may still be a report is held
    until its end. Binary data passes through byte for byte.
    """

    def __init__(self, limit: int = MAX_REPORT) -> None:
        self._limit = limit
        self._held = b""
        self._mid_line = False  # the current line is being passed through

    def feed(self, data: bytes) -> list[Piece]:
        """The pieces that ``data`` (and what was held) completes, in order."""
        data, self._held = self._held + data, b""
        pieces: list[Piece] = []
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            if self._mid_line:
                stop = len(data) if end < 0 else end + 1
                _out(pieces, data[start:stop])
                self._mid_line = end < 0
                start = stop
            elif end < 0:
                self._hold_or_release(pieces, data[start:])
                break
            else:
                line = data[start : end + 1]
                if _is_report_line(line) and len(line) <= self._limit:
                    pieces.append(Piece(line, report=True))
                else:
                    _out(pieces, line)
                start = end + 1
        return pieces

    def close(self) -> list[Piece]:
        """What is still held at the end of the stream (a last line without
        a newline)."""
        held, self._held = self._held, b""
        if held and _is_report_line(held):
            return [Piece(held, report=True)]
        return [Piece(held)] if held else []

    def _hold_or_release(self, pieces: list[Piece], rest: bytes) -> None:
        if _could_become_report(rest) and len(rest) <= self._limit:
            self._held = rest
            return
        _out(pieces, rest)
        self._mid_line = True


def _out(pieces: list[Piece], data: bytes) -> None:
    if pieces and not pieces[-1].report:
        pieces[-1] = Piece(pieces[-1].data + data)
    else:
        pieces.append(Piece(data))


def parse(line: bytes) -> Report:
    """The report a ``::runtrack ...`` line makes; :class:`Malformed` if none."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the line is not UTF-8") from None
    body = text[len(PREFIX.decode()) :].strip()
    command, _, rest = body.partition(" ")
    command, rest = command.strip(), rest.strip()
    if command not in _USAGE:
        got = f"unknown command {command!r}" if command else "no command"
        raise Malformed(f"{got} (allowed: {', '.join(COMMANDS)})")
    try:
        return Report(command, _ARGUMENTS[command](rest))
    except InvalidInput as exc:
        raise Malformed(f"{command}: {exc} (usage: {_USAGE[command]})") from None
    except Malformed as exc:
        raise Malformed(f"{command}: {exc} (usage: {_USAGE[command]})") from None


def _words(rest: str, least: int, most: int) -> list[str]:
    words = rest.split()
    if not least <= len(words) <= most:
        wanted = str(least) if least == most else f"{least} to {most}"
        raise Malformed(f"takes {wanted} word(s), got {len(words)}")
    return words


def _number(field: str, word: str) -> int | float:
    try:
        value: int | float = int(word)
    except ValueError:
        try:
            value = float(word)
        except ValueError:
            raise Malformed(f"{field} {word!r} is not a number") from None
        if not math.isfinite(value):
            raise Malformed(f"{field} {word!r} is not a finite number") from None
    return inputs.number(field, value)


def _count_int(field: str, word: str) -> int:
    try:
        value = int(word)
    except ValueError:
        raise Malformed(f"{field} {word!r} is not a whole number") from None
    return inputs.non_negative_int(field, value)


def _count(rest: str) -> tuple[Any, ...]:
    words = _words(rest, 1, 2)
    name = inputs.key("counter name", words[0])
    return (name, _number("increment", words[1]) if len(words) == 2 else 1)


def _set(rest: str) -> tuple[Any, ...]:
    name, value = _words(rest, 2, 2)
    return (inputs.key("counter name", name), _number("value", value))


def _item(rest: str) -> tuple[Any, ...]:
    words: list[str | None] = [*_words(rest, 2, 4), None, None]
    key = inputs.key("item key", words[0], limit=512)
    status = inputs.choice("item status", words[1], ItemStatus).value
    group = inputs.key("item group", words[2], optional=True)
    source = inputs.key("item source", words[3], optional=True)
    return (key, status, group, source)


def _progress(rest: str) -> tuple[Any, ...]:
    words = _words(rest, 1, 2)
    done = _count_int("done", words[0])
    total = _count_int("total", words[1]) if len(words) == 2 else None
    return (done, total)


def _message(field: str) -> Any:
    def parse_text(rest: str) -> tuple[Any, ...]:
        if not rest:
            raise Malformed(f"the {field} is empty")
        return (inputs.text(field, rest),)

    return parse_text


def _checkpoint(rest: str) -> tuple[Any, ...]:
    try:
        value = json.loads(rest)
    except ValueError as exc:
        raise Malformed(f"not JSON: {exc}") from None
    return (inputs.json_value("checkpoint", value),)


def _time(field: str, word: str) -> datetime:
    try:
        value = datetime.fromisoformat(word.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Malformed(f"{field} {word!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    result = inputs.timestamp(field, value, optional=False)
    assert result is not None
    return result


def _slice(rest: str) -> tuple[Any, ...]:
    words = rest.split(maxsplit=2)
    if len(words) < 2:
        raise Malformed(f"takes 2 times and a reason, got {len(words)} word(s)")
    start, end = _time("start", words[0]), _time("end", words[1])
    if start >= end:
        raise Malformed(f"end {words[1]} is not after start {words[0]}")
    reason = inputs.text("reason", words[2]) if len(words) == 3 else None
    return (start, end, reason)


_ARGUMENTS = {
    "count": _count,
    "set": _set,
    "item": _item,
    "progress": _progress,
    "error": _message("message"),
    "note": _message("note"),
    "checkpoint": _checkpoint,
    "slice": _slice,
}
