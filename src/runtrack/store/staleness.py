"""The one definition of a stale run, and the SQL of every guard.

A run is stale when it is running and silent since before the cutoff: with a
heartbeat older than it, or with no heartbeat yet and a start older than it.
(A pending run holds no lease since issue 17: it is not stale, it expires
after the pending TTL unless a live worker serves its job, :func:`expired`;
which jobs live workers serve is read from the worker rows, not kept on the
job rows.)
:func:`stale_ranges` gives the two as index ranges (the reaper's scan, the
count on the dashboard); :func:`condition` gives the same as one guard of an
UPDATE.
"""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_

from runtrack.models import RunStatus
from runtrack.store.guards import (
    CancelPending,
    CancelRequestedBefore,
    Guard,
    QueuedBefore,
    StaleBefore,
)
from runtrack.store.rows import naive
from runtrack.store.schema import runs

__all__ = ["cancel_requested", "condition", "conditions", "expired", "stale_ranges"]


def stale_ranges(cutoff: datetime) -> list[tuple[str, tuple[ColumnElement[bool], ...]]]:
    """(reason, conditions) of each way a run is stale: each a range of a
    status index, so that scanning or counting them costs what they hold."""
    before = naive(cutoff)
    running = runs.c.status == RunStatus.RUNNING
    return [
        ("heartbeat", (running, runs.c.heartbeat_at < before)),
        ("heartbeat", (running, runs.c.heartbeat_at.is_(None), runs.c.started_at < before)),
    ]


def expired(
    cutoff: datetime, served: frozenset[str] = frozenset()
) -> tuple[ColumnElement[bool], ...]:
    """Pending runs queued before ``cutoff`` (the pending TTL ago), of a job
    not in ``served`` (the jobs live workers serve, read from the worker rows
    by the reaper only once this range without them found candidates)."""
    found = (runs.c.status == RunStatus.PENDING, runs.c.created_at < naive(cutoff))
    if not served:
        return found
    return (*found, runs.c.job_key.not_in(sorted(served)))


# Memoized: every run of one reap gets the same condition objects, which
# keeps the statements of one reap alike for the compiled cache (the guards
# are frozen and hashable: QueuedBefore's served keys are a frozenset).
@functools.lru_cache(maxsize=16)
def condition(guard: Guard) -> ColumnElement[bool]:
    """The SQL of a guard, on the runs table."""
    if isinstance(guard, StaleBefore):
        return or_(*(and_(*conditions) for _, conditions in stale_ranges(guard.cutoff)))
    if isinstance(guard, CancelRequestedBefore):
        return and_(*cancel_requested(guard.cutoff))
    if isinstance(guard, QueuedBefore):
        return and_(*expired(guard.cutoff, guard.served))
    column = runs.c.cancel_requested_at
    assert isinstance(guard, CancelPending)
    return column.is_not(None) if guard.pending else column.is_(None)


def cancel_requested(cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    """Running runs whose cancel request is older than ``cutoff`` (stuck)."""
    return (runs.c.status == RunStatus.RUNNING, runs.c.cancel_requested_at < naive(cutoff))


def conditions(guards: tuple[Guard, ...]) -> list[ColumnElement[bool]]:
    """The SQL of several guards (all must hold)."""
    return [condition(guard) for guard in guards]
