"""Values of the ``runtrack exec`` command line, read the same way by the
quick path (:mod:`runtrack.cli.launch`) and the Typer command
(:mod:`runtrack.cli.exec`)."""

from __future__ import annotations

from datetime import timedelta

from runtrack import inputs
from runtrack.errors import RuntrackError

__all__ = ["check_duration", "parse_params"]

_UNITS = "smhdw"


def check_duration(value: str) -> timedelta:
    """A duration with its unit (``90s``, ``10m``, ``2h``, ``1d``, ``1w``):
    a bare number is refused, since nobody can tell whether it meant seconds
    or minutes. Raises ``ValueError`` saying what is allowed."""
    text = value.strip().lower()
    allowed = "allowed: a positive number and s, m, h, d or w: 90s, 10m, 2h"
    if not text or text[-1] not in _UNITS:
        raise ValueError(f"{value!r} has no unit ({allowed})")
    try:
        return inputs.duration("timeout", text)
    except RuntrackError:
        raise ValueError(f"{value!r} is not a duration ({allowed})") from None


def parse_params(values: list[str]) -> dict[str, str]:
    """``--param K=V`` values as a dict, each key once; ``ValueError`` otherwise."""
    found: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{value!r} is not KEY=VALUE")
        if key in found:
            raise ValueError(f"{key!r} is given twice")
        found[key] = text
    return found
