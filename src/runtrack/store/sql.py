"""The store: every SQL statement runtrack issues, in SQLAlchemy Core.

One ``Store`` on one engine, holding a part per concept so that no module
grows into a grab-bag; every part runs in the same :class:`Transactions`, and
each part of the ledger is given only the parts it uses:

- :mod:`~runtrack.store.base`: transactions, retries, driver-error translation;
- :mod:`~runtrack.store.jobs`: job rows and the runner's schedule claims;
- :mod:`~runtrack.store.runs`: runs under a lease, guarded transitions, queries;
- :mod:`~runtrack.store.liveness`: heartbeats, fenced writes, reaping;
- :mod:`~runtrack.store.finalizing`: the one writer of a run's end (its job's
  state, its tallies, what the job owes), for a run and for a set of runs;
- :mod:`~runtrack.store.history`: items, retention, pauses, tallies, maintenance;
- :mod:`~runtrack.store.carry`, :mod:`~runtrack.store.carry_handout`: what
  jobs owe (failed items and slices);
- :mod:`~runtrack.store.queue`: pending runs, claims and provider limits;
- :mod:`~runtrack.store.sessions`: dashboard sign-outs;
- :mod:`~runtrack.store.backfills`, :mod:`~runtrack.store.workers`: backfills
  and worker rows;
- :mod:`~runtrack.store.incidents`: expectations, incidents, deliveries;
- :mod:`~runtrack.store.statements`: the prebuilt statements they share.
"""

from __future__ import annotations

from sqlalchemy import Engine

from runtrack.store.backfills import BackfillStore
from runtrack.store.base import Transactions
from runtrack.store.carry import CarryRequest
from runtrack.store.carry_handout import CarryStore
from runtrack.store.history import HistoryStore
from runtrack.store.incidents import AlertStore
from runtrack.store.jobs import JobStore
from runtrack.store.liveness import LivenessStore
from runtrack.store.queue import Claim, QueueStore
from runtrack.store.runs import RunStore
from runtrack.store.sessions import SessionStore
from runtrack.store.values import (
    JobEffect,
    LeaseTaken,
    RunFilter,
    StartedRun,
    WindowBeforeWatermark,
)
from runtrack.store.workers import WorkerStore

__all__ = [
    "CarryRequest",
    "Claim",
    "JobEffect",
    "LeaseTaken",
    "RunFilter",
    "StartedRun",
    "Store",
    "WindowBeforeWatermark",
]


class Store:
    """The store's parts on one engine, all in the same :class:`Transactions`.
    The ledger hands each of its own parts only the store parts it uses."""

    def __init__(self, engine: Engine, *, retry_seconds: float = 5.0) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.tx = tx = Transactions(engine, retry_seconds=retry_seconds)
        self.runs = RunStore(tx)
        self.liveness = LivenessStore(tx)
        self.jobs = JobStore(tx)
        self.history = HistoryStore(tx)
        self.carry = CarryStore(tx)
        self.sessions = SessionStore(tx)
        self.queue = QueueStore(tx)
        self.backfills = BackfillStore(tx)
        self.workers = WorkerStore(tx)
        self.alerts = AlertStore(tx, self.jobs)
