"""What a run records about the exception (or reason) that ended it.

Describing an exception runs the job's code: its ``__str__`` and
``__repr__``, its arguments' ``__str__``, its ``__notes__``, its module
name. Any of them can raise, and a message can be megabytes long. A run must
be finalized whatever its exception does, so each step falls back to less and
the exception's type name is always recorded. Stored text is capped so that
every database takes it (MySQL's TEXT holds 64 KB):

- ``error_type``: at most :data:`MAX_TYPE` characters;
- ``error_message``: the first :data:`MAX_MESSAGE` characters;
- ``error_stack``: each part of the traceback (a frame, an exception's line)
  at most :data:`MAX_MESSAGE` characters, the whole at most :data:`MAX_STACK`,
  keeping its start and its end (the innermost frames and the message).

NUL and lone surrogates (which no database stores) are escaped.
"""

from __future__ import annotations

import contextlib
import json
import traceback
from dataclasses import dataclass, replace

from runtrack.errors import RateLimited
from runtrack.models import RATE_LIMITED, RunStatus
from runtrack.store.values import NewItem, RunEnd

__all__ = [
    "MAX_MESSAGE",
    "MAX_STACK",
    "MAX_TYPE",
    "Failure",
    "bare_end",
    "capped",
    "described",
    "failure_note",
    "failure_of",
    "storable",
    "type_name",
    "without_items",
]

MAX_TYPE = 255
MAX_MESSAGE = 10_000
MAX_STACK = 100_000


@dataclass(frozen=True, slots=True)
class Failure:
    """What a run records of what ended it (a ``None`` part: nothing)."""

    type: str | None
    message: str | None = None
    stack: str | None = None


def failure_of(error: BaseException | str | None, error_type: str | None) -> Failure:
    """What a run ended by ``error`` records (``error_type`` overrides the
    type derived from it). Never raises, whatever ``error`` does."""
    if error_type is None and isinstance(error, RateLimited):
        error_type = RATE_LIMITED  # shown as a provider pause, not as a crash
    if error is None:
        return Failure(capped(error_type, MAX_TYPE) if error_type else None)
    if isinstance(error, str):
        return Failure(capped(error_type or "error", MAX_TYPE), capped(error, MAX_MESSAGE))
    return Failure(
        capped(error_type, MAX_TYPE) if error_type else type_name(error),
        capped(message(error), MAX_MESSAGE),
        stack(error),
    )


def type_name(error: BaseException) -> str:
    """``module.QualName`` of the exception's class (the builtins bare)."""
    cls = type(error)
    name = cls.__qualname__  # always a str: ``type`` enforces it
    module = cls.__dict__.get("__module__")  # any object: a class may set it so
    if isinstance(module, str) and module != "builtins":
        name = f"{module}.{name}"
    return capped(name, MAX_TYPE)


def message(error: BaseException) -> str:
    """``str(error)``; its ``repr`` if that raises; else a placeholder."""
    try:
        return str(error)
    except Exception as failed:
        why = type(failed).__name__
    try:
        return f"{error!r} (str() raised {why})"
    except Exception:
        return f"<{type(error).__name__}: str() and repr() raised>"


def described(error: BaseException, limit: int = MAX_MESSAGE) -> str:
    """``error``'s message as an integration or a log line passes it on: never
    raises, never empty (its type name then), at most ``limit`` characters,
    storable (see :func:`storable`)."""
    text = message(error)
    return capped(text if text.strip() else type_name(error), limit)


def stack(error: BaseException) -> str:
    """The formatted traceback, each part and the whole capped (see above)."""
    try:
        parts = [capped(part, MAX_MESSAGE) for part in traceback.format_exception(error)]
    except Exception as failed:  # e.g. a __notes__ property that raises
        return capped(
            f"{type_name(error)}: its traceback could not be formatted ({type(failed).__name__})",
            MAX_MESSAGE,
        )
    text = "".join(parts)
    if len(text) <= MAX_STACK:
        return text
    head = MAX_STACK // 4
    marker = f"\n... [{len(text) - MAX_STACK} characters cut] ...\n"
    return text[:head] + marker + text[len(text) - (MAX_STACK - head - len(marker)) :]


def capped(text: str, limit: int) -> str:
    """``text`` as every database stores it, in at most ``limit`` characters
    (an end cut off says how much was cut)."""
    text = str.__str__(text)  # a str subclass's own methods are not trusted
    if len(text) > limit:
        marker = f" ... [{len(text)} characters in all]"
        text = text[: max(limit - len(marker), 0)] + marker
    return storable(text)[:limit]


def storable(text: str) -> str:
    """Text the job's code produced, as every database can store it: NUL and
    lone surrogates escaped. A failure must be recorded whatever it says."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def bare_end(end: RunEnd, failure: Exception) -> RunEnd:
    """The part of ``end`` that can still be written after ``failure``
    refused it: plain numbers, times and our own text, and the JSON fields
    that serialize. The run ends failed and says why, unless it was failing
    already."""
    kept = RunEnd(
        end.finished_at,
        error_type=end.error_type,
        error_message=end.error_message,
        error_stack=end.error_stack,
        progress_total=end.progress_total,
        progress_done=end.progress_done,
        items=end.items,
        groups_found=end.groups_found,
        groups_missing=end.groups_missing,
    )
    for name in ("counters", "notes", "error_details"):
        with contextlib.suppress(Exception):
            json.dumps(getattr(end, name), allow_nan=False)
            setattr(kept, name, getattr(end, name))
    if kept.error_type is None:
        why = failure_of(
            f"its final values could not be written ({type(failure).__name__}: {message(failure)})",
            "finalize_error",
        )
        kept.failed_with(why.type, why.message, why.stack)
    return kept


def without_items(end: RunEnd, dropped: list[NewItem]) -> RunEnd:
    """``end`` whose item tallies leave out the ``dropped`` rows: what the
    run says it recorded is what is stored."""
    kept = replace(end)
    if end.items is not None:
        items = dict(end.items)
        for row in dropped:
            items[row["status"]] = max(0, items.get(row["status"], 0) - 1)
        kept.items = items
    return kept


def failure_note(status: RunStatus, error_type: object, retried: object) -> str | None:
    """How a terminal run's failure reads (``None``: as its status says, a
    failure for good when failed). A rate limit and a failed attempt whose
    retry is scheduled are failures that the failure streak does not count."""
    if status is not RunStatus.FAILED:
        return None
    if error_type == RATE_LIMITED:
        return "rate_limited"
    return "retried" if retried else None
