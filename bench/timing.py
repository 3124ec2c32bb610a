"""Samples, their summary, and A/B alternation.

The machine the suite runs on is shared and noisy, so no figure stands alone:
each runtrack measure is taken in the same process as its raw floor, the two
alternating batch by batch (A B, B A, A B, ...), so that a burst of load
from elsewhere lands on both.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Batch", "Stats", "alternate", "summarize", "timed"]


@dataclass(frozen=True, slots=True)
class Stats:
    """The distribution of one measure's samples (in the measure's unit)."""

    median: float
    p95: float
    min: float
    max: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median": self.median,
            "p95": self.p95,
            "min": self.min,
            "max": self.max,
            "n": self.n,
        }


def summarize(samples: Sequence[float]) -> Stats:
    """Median, 95th percentile (nearest rank), min and max of ``samples``."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(0, math.ceil(0.95 * len(ordered)) - 1)  # nearest rank
    return Stats(statistics.median(ordered), ordered[rank], ordered[0], ordered[-1], len(ordered))


@dataclass(slots=True)
class Batch:
    """What one batch of a measure gathered: per-operation wall times, and
    the process CPU time the whole batch used (all threads)."""

    times: list[float]
    cpu: float = 0.0
    ops: int = 0

    def extend(self, other: Batch) -> None:
        self.times.extend(other.times)
        self.cpu += other.cpu
        self.ops += other.ops


def timed(operation: Callable[[], object], count: int) -> Batch:
    """Run ``operation`` ``count`` times, timing each call."""
    times: list[float] = []
    clock = time.perf_counter
    cpu0 = time.process_time()
    for _ in range(count):
        began = clock()
        operation()
        times.append(clock() - began)
    return Batch(times, time.process_time() - cpu0, count)


def alternate(sides: Sequence[tuple[str, Callable[[], Batch]]], reps: int) -> dict[str, Batch]:
    """Run each side's batch ``reps`` times, alternating the order every
    repetition; returns every side's batches merged."""
    merged = {name: Batch([]) for name, _ in sides}
    for rep in range(reps):
        order = sides if rep % 2 == 0 else list(reversed(sides))
        for name, batch in order:
            merged[name].extend(batch())
    return merged
