"""What a job promises: success within a time, at most N failures in a row,
counters within a ratio of their usual values, counters that must not end 0.

Expectations are stored in the database (``expectations`` table) so that any
process can check them: ``ledger.expect(job, ...)``, or
``@runner.job(..., expect=Expect(...))``. A runner job without one gets the
default ``late after 3 x its schedule's interval``; a library-only job gets
nothing. Validation happens here, before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from runtrack import inputs
from runtrack.errors import InvalidInput, describe
from runtrack.readable import span

__all__ = ["DEFAULT_LATE_FACTOR", "Expect", "Volume", "expect_from", "stored"]

#: A runner job with no expectation is late after this many schedule intervals.
DEFAULT_LATE_FACTOR = 3


@dataclass(frozen=True, slots=True)
class Volume:
    """A guarded counter: a success/partial run whose value is below
    ``min_ratio`` (or above ``max_ratio``) x the median of the job's last
    ``history`` successful values ends ``partial`` with an anomaly (and, with
    ``hold_watermark``, leaves the watermark). Nothing is judged before
    ``min_history`` values are known."""

    min_ratio: float | None = None
    max_ratio: float | None = None
    history: int = 10
    min_history: int = 5
    hold_watermark: bool = False

    def __post_init__(self) -> None:
        for name in ("min_ratio", "max_ratio"):
            value = getattr(self, name)
            ok = value is None or (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value >= 0
            )
            if not ok:
                raise InvalidInput(name, f"got {describe(value)}", "a ratio >= 0, or None")
        if self.min_ratio is None and self.max_ratio is None:
            raise InvalidInput("volume", "neither min_ratio nor max_ratio", "one of them, or both")
        inputs.positive_int("history", self.history, limit=1000)
        inputs.positive_int("min_history", self.min_history, limit=1000)
        if self.min_history > self.history:
            raise InvalidInput(
                "min_history", f"{self.min_history} > history {self.history}", "<= history"
            )
        inputs.flag("hold_watermark", self.hold_watermark)

    def as_dict(self) -> dict[str, Any]:
        return {
            "min_ratio": self.min_ratio,
            "max_ratio": self.max_ratio,
            "history": self.history,
            "min_history": self.min_history,
            "hold_watermark": self.hold_watermark,
        }


@dataclass(frozen=True, slots=True)
class Expect:
    """A job's expectations (every field optional). ``success_within`` and
    ``remind_every`` take a timedelta, seconds or ``"26h"``."""

    success_within: timedelta | None = None
    max_failures: int | None = None
    volume: dict[str, Volume] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    remind_every: timedelta | None = None
    #: "explicit", or "default" (a runner's default, replaced by any explicit one).
    origin: str = "explicit"

    def as_row(self) -> dict[str, Any]:
        return {
            "success_within": _seconds(self.success_within),
            "max_failures": self.max_failures,
            "volume": {name: v.as_dict() for name, v in self.volume.items()} or None,
            "required": list(self.required) or None,
            "remind_every": _seconds(self.remind_every),
            "origin": self.origin,
        }

    def describe(self) -> list[str]:
        """The promises in words, for the job page and the CLI."""
        said = []
        if self.success_within is not None:
            said.append(f"a success within {span(self.success_within)}")
        if self.max_failures is not None:
            said.append(f"fewer than {self.max_failures} failed tick(s) in a row")
        for name, v in self.volume.items():
            bounds = [f">= {v.min_ratio:g}" if v.min_ratio is not None else ""]
            bounds.append(f"<= {v.max_ratio:g}" if v.max_ratio is not None else "")
            said.append(f"{name} {' and '.join(b for b in bounds if b)} x its median")
        said.extend(f"{name} > 0 on a success" for name in self.required)
        return said


def expect_from(
    success_within: timedelta | float | str | None = None,
    max_failures: int | None = None,
    volume: dict[str, Volume] | None = None,
    required: Sequence[str] | None = None,
    remind_every: timedelta | float | str | None = None,
) -> Expect:
    """An :class:`Expect` from caller input, every value checked."""
    within = None if success_within is None else inputs.duration("success_within", success_within)
    if max_failures is not None:
        inputs.positive_int("max_failures", max_failures, limit=10_000)
    if volume is not None and (
        not isinstance(volume, dict) or not all(isinstance(v, Volume) for v in volume.values())
    ):
        raise InvalidInput("volume", f"got {describe(volume)}", 'a dict {"counter": Volume(...)}')
    for name in volume or {}:
        inputs.key("volume counter", name)
    names = inputs.keys("required", required if required is not None else [])
    remind = None if remind_every is None else inputs.duration("remind_every", remind_every)
    return Expect(within, max_failures, dict(volume or {}), tuple(names), remind)


def stored(row: Any) -> Expect:
    """An expectation as the ``expectations`` table holds it."""
    m = row._mapping
    volume = {name: Volume(**v) for name, v in (m["volume"] or {}).items()}
    return Expect(
        success_within=_delta(m["success_within"]),
        max_failures=m["max_failures"],
        volume=volume,
        required=tuple(m["required"] or ()),
        remind_every=_delta(m["remind_every"]),
        origin=m["origin"],
    )


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _delta(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)
