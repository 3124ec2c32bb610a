"""The store: every SQL statement runtrack issues, in SQLAlchemy Core.

One ``Store`` on one engine, assembled from a part per concept so that no
module grows into a grab-bag:

- :mod:`~runtrack.store.base`: transactions, retries, driver-error translation;
- :mod:`~runtrack.store.jobs`: job rows and the runner's schedule claims;
- :mod:`~runtrack.store.runs`: runs under a lease, guarded transitions, queries;
- :mod:`~runtrack.store.liveness`: heartbeats, fenced writes, reaping;
- :mod:`~runtrack.store.history`: items, retention, pauses, tallies, maintenance;
- :mod:`~runtrack.store.statements`: the prebuilt statements they share.
"""

from __future__ import annotations

from runtrack.store.history import HistoryStore
from runtrack.store.jobs import JobStore
from runtrack.store.liveness import LivenessStore
from runtrack.store.statements import (
    JobEffect,
    LeaseTaken,
    RunFilter,
    StartedRun,
    WindowBeforeWatermark,
)

__all__ = [
    "JobEffect",
    "LeaseTaken",
    "RunFilter",
    "StartedRun",
    "Store",
    "WindowBeforeWatermark",
]


class Store(LivenessStore, JobStore, HistoryStore):
    """All database work, on one engine."""
