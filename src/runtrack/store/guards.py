"""Conditions a guarded transition checks, given as data.

The ledger's parts (the reaper) say *which* runs may change, "silent since
before T", "cancel requested before T", "a cancel is (not) pending"; the
store alone turns them into SQL (:func:`runtrack.store.staleness.condition`).
They are frozen and compare by value, so the runs of one reap that share a
guard change together in one statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["CancelPending", "CancelRequestedBefore", "Guard", "QueuedBefore", "StaleBefore"]


@dataclass(frozen=True, slots=True)
class StaleBefore:
    """The running run has been silent since before ``cutoff``: its last
    heartbeat, or its start if it never beat, is older."""

    cutoff: datetime


@dataclass(frozen=True, slots=True)
class CancelRequestedBefore:
    """A cancel was requested before ``cutoff`` (and the run is still going)."""

    cutoff: datetime


@dataclass(frozen=True, slots=True)
class CancelPending:
    """A cancel is pending (``True``) or not (``False``)."""

    pending: bool


@dataclass(frozen=True, slots=True)
class QueuedBefore:
    """The run is still pending and was queued before ``cutoff`` (issue 17:
    its pending TTL is over), and its job is not one of ``served``: the keys
    of the jobs live workers serve, as the reaper read them from the worker
    rows just before (a frozenset, so that the guard stays hashable)."""

    cutoff: datetime
    served: frozenset[str] = frozenset()


Guard = StaleBefore | CancelRequestedBefore | CancelPending | QueuedBefore
