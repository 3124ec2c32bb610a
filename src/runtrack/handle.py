"""Pieces of a run handle's state that need no handle: which run it is, how
its lock-free counters are read, and the interrupt of a run that is ending or
ended."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from runtrack.errors import RunFinished
from runtrack.models import Window

__all__ = ["Finished", "RunIdentity", "hold_watermark", "read_counters", "steps"]


def steps(counter: itertools.count[int]) -> int:
    """How many times ``next()`` was called on an ``itertools.count()``: its
    repr, ``count(N)``, is the one way to read it without advancing it (its
    pickling support is deprecated)."""
    return int(repr(counter)[6:-1])


def read_counters(
    sums: dict[str, int | float], ones: list[tuple[str, itertools.count[int]]]
) -> dict[str, int | float]:
    """The counters: the amounts summed under the lock plus the increments of 1."""
    counters = dict(sums)
    for name, counter in ones:
        counters[name] = counters.get(name, 0) + steps(counter)
    return counters


class Finished:
    """The interrupt of a run that is ending or ended: RunFinished, for good
    (a lost lease or a cancel seen later does not replace it)."""

    __slots__ = ("run_id", "status")

    def __init__(self, run_id: int, status: str) -> None:
        self.run_id, self.status = run_id, status

    def __call__(self) -> BaseException:
        return RunFinished(self.run_id, self.status)


class RunIdentity:
    """Which run a handle is, read-only: the finalization writes the job's
    watermark, checkpoint and last run from these, so code that replaced one
    (``run.job = "other"``) would move another job's state."""

    def __init__(
        self,
        id: int,
        uid: str,
        job: str,
        params: dict[str, Any] | None,
        window: Window,
        started_at: datetime,
        moves_watermark: bool,
    ) -> None:
        self._id, self._uid, self._job, self._params = id, uid, job, params
        self._window, self._started_at = window, started_at
        self._moves_watermark = moves_watermark

    @property
    def id(self) -> int:
        return self._id

    @property
    def uid(self) -> str:
        return self._uid

    @property
    def job(self) -> str:
        return self._job

    @property
    def params(self) -> dict[str, Any] | None:
        return self._params

    @property
    def window(self) -> Window:
        return self._window

    @property
    def started_at(self) -> datetime:
        return self._started_at

    @property
    def moves_watermark(self) -> bool:
        """Whether ending success/partial moves the job's watermark to window.end."""
        return self._moves_watermark


def hold_watermark(run: RunIdentity) -> None:
    """The run's end leaves its job's watermark where it is (a volume anomaly)."""
    run._moves_watermark = False
