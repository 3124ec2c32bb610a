"""Checks on what callers hand the ledger, run before anything is written.

Each check returns the cleaned value or raises :class:`InvalidInput` naming
the argument, what was wrong and what is allowed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from runtrack.clock import utc
from runtrack.errors import InvalidInput, describe

__all__ = [
    "choice",
    "duration",
    "flag",
    "json_copy",
    "json_value",
    "key",
    "keys",
    "label_pairs",
    "labels",
    "non_negative_int",
    "number",
    "positive_int",
    "text",
    "timestamp",
]

E = TypeVar("E", bound=StrEnum)
MAX_KEY = 255
#: The largest id or count a database column holds (BIGINT).
MAX_INT = 2**63 - 1
#: The longest duration that is subtracted from "now" (ages, thresholds):
#: the result is still a date every database stores (MySQL's DATETIME starts
#: at year 1000) and never overflows.
MAX_DURATION = timedelta(days=365 * 1000)
# Control characters, and lone surrogates (no UTF-8 encoding: no driver sends them).
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_SCALARS = (str, int, bool)
#: A run's labels: at most this many, names as below, values of at most 200
#: characters. No ``=`` or ``:`` in a name: the CLI's and the API's filters
#: split ``name=value`` and ``name:value`` there.
MAX_LABELS = 20
MAX_LABEL_VALUE = 200
_LABEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,62}")
LABEL_NAMES = "1-63 letters, digits, _ . - /, starting with a letter or digit"


def key(field: str, value: object, *, limit: int = MAX_KEY, optional: bool = False) -> str:
    """A name such as a job key, provider or user: a non-empty string of at
    most ``limit`` characters without control characters."""
    if value is None and optional:
        return None  # type: ignore[return-value]
    if isinstance(value, str) and type(value) is not str:
        value = str.__str__(value)  # a plain str: a subclass's own methods are not trusted
    if (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and not value.isspace()
        and _CONTROL.search(value) is None
    ):
        return value  # the common case, checked without building the messages
    allowed = f"a non-empty string of at most {limit} characters without control characters"
    if not isinstance(value, str):
        raise InvalidInput(field, f"got {type(value).__name__} {describe(value)}", allowed)
    if not value.strip():
        raise InvalidInput(field, "is empty", allowed)
    if len(value) > limit:
        raise InvalidInput(field, f"is {len(value)} characters long", allowed)
    if _SURROGATE.search(value):
        raise InvalidInput(
            field, f"is not valid Unicode (a lone surrogate): {describe(value)}", allowed
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(field, f"contains a control character: {describe(value)}", allowed)
    return value


def keys(field: str, values: object, *, limit: int = MAX_KEY) -> list[str]:
    """A list (or tuple or set) of names, each checked by :func:`key`; a lone
    string is refused rather than read as a list of its characters."""
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple | set | frozenset):
        raise InvalidInput(
            field, f"got {type(values).__name__} {describe(values)}", "a list of strings"
        )
    return [key(field, value, limit=limit) for value in values]


def labels(field: str, value: object) -> dict[str, str]:
    """A run's labels: a dict of at most :data:`MAX_LABELS` names (see
    :data:`LABEL_NAMES`) to non-empty strings of at most 200 characters
    without control characters; returned as a plain copy."""
    if not isinstance(value, dict):
        raise InvalidInput(
            field,
            f"got {type(value).__name__} {describe(value)}",
            f"a dict of at most {MAX_LABELS} labels, name -> string",
        )
    if len(value) > MAX_LABELS:
        raise InvalidInput(field, f"has {len(value)} labels", f"at most {MAX_LABELS}")
    found: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or _LABEL_NAME.fullmatch(name) is None:
            what = f"got {type(name).__name__} {describe(name)}"
            raise InvalidInput(f"{field} name", what, LABEL_NAMES)
        found[str.__str__(name)] = key(f"{field}[{name}]", text, limit=MAX_LABEL_VALUE)
    return found


def label_pairs(field: str, pairs: Sequence[str] | None, separator: str) -> dict[str, str]:
    """Label filters written ``name<separator>value`` (the CLI's
    ``--label team=growth``, the API's ``label=team:growth``), split at the
    first separator, as the dict :func:`labels` checks (the ledger does)."""
    found: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition(separator) if isinstance(pair, str) else ("", "", "")
        allowed = f"name{separator}value, the name {LABEL_NAMES}"
        if not sep or not name or not value:
            other = ":" if separator == "=" else "="
            if isinstance(pair, str) and not sep and other in pair:
                # The other interface's form (the CLI's team=growth in the
                # API, or the API's team:growth in the CLI): say which one.
                allowed = f"name{separator}value here ({pair.replace(other, separator, 1)!r})"
            raise InvalidInput(field, f"got {describe(pair)}", allowed)
        if name in found:
            raise InvalidInput(field, f"names {name!r} twice (no run has both values)", allowed)
        found[name] = value
    return found


def json_value(field: str, value: Any, *, mapping: bool = False) -> Any:
    """A value that survives a JSON round trip (and is an object if ``mapping``)."""
    if mapping and value is not None and not isinstance(value, dict):
        raise InvalidInput(field, f"got {type(value).__name__}", "a JSON object (dict) or None")
    if value is None or type(value) in _JSON_SCALARS:
        if type(value) is str and _SURROGATE.search(value):
            raise InvalidInput(field, "is not valid Unicode (a lone surrogate)", "a UTF-8 string")
        return value  # always serializable; per item, the dump would cost more than the rest
    try:
        # Encoded too: a lone surrogate dumps fine but no database stores it.
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except Exception as exc:  # also the caller's own objects raising (a dict's items())
        raise InvalidInput(
            field,
            f"is not JSON-serializable ({_why(exc)})",
            "dicts, lists, strings, finite numbers, booleans and None",
        ) from exc
    return value


def _why(exc: Exception) -> str:
    """What went wrong, in at most 200 characters, whatever ``exc`` does."""
    try:
        return str(exc)[:200]
    except Exception:
        return describe(exc, 200)


def json_copy(field: str, value: Any, *, mapping: bool = False) -> Any:
    """:func:`json_value`, returned as a copy made of plain JSON values: what
    is stored later is what was given now, whatever the caller does to its
    objects meanwhile (one of them may even become unserializable)."""
    if value is None or type(value) in _JSON_SCALARS:
        return json_value(field, value, mapping=mapping)
    if mapping and not isinstance(value, dict):
        raise InvalidInput(field, f"got {type(value).__name__}", "a JSON object (dict) or None")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode()  # a lone surrogate dumps fine but no database stores it
    except Exception as exc:  # also the caller's own objects raising (a dict's items())
        raise InvalidInput(
            field,
            f"is not JSON-serializable ({type(exc).__name__}: {_why(exc)})",
            "dicts, lists, strings, finite numbers, booleans and None",
        ) from None
    return json.loads(text)


def number(field: str, value: object, *, limit: float | None = None) -> int | float:
    """A finite int or float (``bool`` is not a number here), as a plain int
    or float, of magnitude at most ``limit`` if given."""
    allowed = "an int or a finite float" + (f" from -{limit} to {limit}" if limit else "")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(field, f"got {type(value).__name__} {describe(value)}", allowed)
    # A subclass's arithmetic is its own: keep the plain number it holds.
    plain = int.__int__(value) if isinstance(value, int) else float.__float__(value)
    if isinstance(plain, float) and not math.isfinite(plain):
        raise InvalidInput(field, f"got {plain}", allowed)
    if limit is not None and abs(plain) > limit:
        raise InvalidInput(field, f"got {describe(plain)}", allowed)
    return plain


def non_negative_int(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise InvalidInput(field, f"got {describe(value)}", f"an int from 0 to {MAX_INT}")
    return value


def text(field: str, value: object, *, limit: int = 10_000, optional: bool = False) -> str:
    """Free text such as a reason: a string of at most ``limit`` characters
    without NUL (PostgreSQL cannot store it; lines and tabs are fine)."""
    if value is None and optional:
        return None  # type: ignore[return-value]
    allowed = f"a string of at most {limit} characters without NUL"
    if isinstance(value, str) and type(value) is not str:
        value = str.__str__(value)  # a plain str: a subclass's own methods are not trusted
    if not isinstance(value, str):
        raise InvalidInput(field, f"got {type(value).__name__} {describe(value)}", allowed)
    if len(value) > limit:
        raise InvalidInput(field, f"is {len(value)} characters long", allowed)
    if "\x00" in value:
        raise InvalidInput(field, "contains NUL", allowed)
    if _SURROGATE.search(value):
        raise InvalidInput(field, "is not valid Unicode (a lone surrogate)", allowed)
    return value


def flag(field: str, value: object, *, optional: bool = False) -> bool | None:
    """``True`` or ``False`` (or ``None`` if ``optional``); 1, 0 and "yes" are not flags."""
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise InvalidInput(
            field, f"got {describe(value)}", "True or False" + (" or None" if optional else "")
        )
    return value


def positive_int(field: str, value: object, *, limit: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(field, f"got {describe(value)}", "an int >= 1")
    if value > limit:
        raise InvalidInput(field, f"got {describe(value)}", f"an int from 1 to {limit}")
    return value


def choice(field: str, value: object, enum: type[E]) -> E:
    try:
        return enum(value)  # type: ignore[arg-type]
    except ValueError:
        names = ", ".join(m.value for m in enum)
        raise InvalidInput(field, f"got {describe(value)}", names) from None


def choices(field: str, values: object, enum: type[E]) -> tuple[E, ...]:
    """One value of ``enum``, or a list (tuple, set) of them."""
    if isinstance(values, str):
        return (choice(field, values, enum),)
    if not isinstance(values, list | tuple | set | frozenset):
        names = ", ".join(m.value for m in enum)
        raise InvalidInput(field, f"got {describe(values)}", f"one of, or a list of: {names}")
    return tuple(choice(field, v, enum) for v in values)


def timestamp(field: str, value: object, *, optional: bool = True) -> datetime | None:
    """An aware datetime (naive ones are taken as UTC), returned in UTC."""
    if value is None and optional:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput(
            field,
            f"got {type(value).__name__} {describe(value)}",
            "a datetime (naive values are read as UTC)",
        )
    try:
        return utc(value)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is past year 9999 in UTC
        raise InvalidInput(
            field, f"{value.isoformat()} is out of range", "a datetime within years 1-9999 UTC"
        ) from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def time_or_age(field: str, value: str, now: datetime) -> datetime:
    """A time given as ISO 8601 (naive means UTC) or as an age with a unit
    (``24h``: that long before ``now``), as the CLI's ``--since`` and the
    API's ``since=`` both take it."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None and not text.replace(".", "", 1).isdigit():
        result = timestamp(field, parsed, optional=False)
        assert result is not None
        return result
    allowed = "an ISO 8601 time (2026-01-31T08:00:00Z) or an age with a unit (30m, 24h, 7d)"
    if not text or text[-1].lower() not in _UNITS:
        problem = f"{describe(value)} has no unit; add one" if _is_number(text) else None
        raise InvalidInput(field, problem or f"got {describe(value)}", allowed)
    return now - duration(field, text, limit=MAX_DURATION)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _spelled_duration(field: str, value: str, allowed: str) -> timedelta:
    text = value.strip().lower()
    unit = _UNITS.get(text[-1])
    amount = text[:-1] if unit else text
    try:
        number = float(amount)
    except ValueError:
        raise InvalidInput(field, f"got {describe(value)}", allowed) from None
    if unit is None:
        raise InvalidInput(
            field, f"{describe(value)} has no unit; add one", "90d, 15m, 30s, 2h or 1w"
        )
    try:
        return timedelta(seconds=number * unit)
    except OverflowError:
        raise InvalidInput(field, f"got {describe(value)}", allowed) from None


def duration(
    field: str, value: object, *, allow_zero: bool = False, limit: timedelta | None = None
) -> timedelta:
    """A positive duration: a timedelta, seconds as a number, or text with a
    unit such as ``"90s"``, ``"15m"``, ``"1h"``, ``"90d"``; at most ``limit``
    if given (:data:`MAX_DURATION` for one that is subtracted from now). Text
    without a unit is refused: ``"90"`` read as seconds once pruned a whole
    ledger whose owner meant days."""
    allowed = "a timedelta, seconds, or text like 30s / 15m / 1h / 90d / 2w"
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or abs(value) > timedelta.max.total_seconds():
            raise InvalidInput(field, f"got {describe(value)}", allowed)
        result = timedelta(seconds=value)
    elif isinstance(value, str) and value.strip():
        result = _spelled_duration(field, value, allowed)
    else:
        raise InvalidInput(field, f"got {describe(value)}", allowed)
    if result < timedelta(0) or (result == timedelta(0) and not allow_zero):
        raise InvalidInput(field, f"got {describe(value)}", "a positive duration")
    if limit is not None and result > limit:
        raise InvalidInput(field, f"got {describe(value)}", f"a duration of at most {limit}")
    return result
