"""The store: every SQL statement runtrack issues, in SQLAlchemy Core.

One ``Store`` on one engine, holding a part per concept so that no module
grows into a grab-bag; every part runs in the same :class:`Transactions`, and
the store hands each of its methods to the part that implements it:

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
- :mod:`~runtrack.store.statements`: the prebuilt statements they share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from sqlalchemy import Engine

from runtrack.store.base import Transactions
from runtrack.store.carry import CarryRequest
from runtrack.store.carry_handout import CarryStore
from runtrack.store.history import HistoryStore
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


P = ParamSpec("P")
R = TypeVar("R")


class _Held(Generic[P, R]):
    """A method of the :class:`Store` that one of its parts implements. The
    first use on a store binds the part's method on the instance, so later
    calls (every run's) cost what a plain method call does."""

    def __init__(self, part: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self.part = part
        self.method = method
        self.__doc__ = method.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, store: None, owner: type) -> Callable[Concatenate[Any, P], R]: ...

    @overload
    def __get__(self, store: object, owner: type) -> Callable[P, R]: ...

    def __get__(self, store: object, owner: type) -> Callable[..., R]:
        if store is None:
            return self.method
        bound: Callable[P, R] = getattr(getattr(store, self.part), self.method.__name__)
        store.__dict__[self.name] = bound
        return bound


class Store:
    """All database work, on one engine."""

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

    # -- tx (base.py) ---------------------------------------------------

    write = _Held("tx", Transactions.write)
    write_prepared = _Held("tx", Transactions.write_prepared)
    read = _Held("tx", Transactions.read)
    server_now = _Held("tx", Transactions.server_now)

    # -- runs (runs.py) -------------------------------------------------

    insert_run = _Held("runs", RunStore.insert_run)
    transition = _Held("runs", RunStore.transition)
    request_cancel = _Held("runs", RunStore.request_cancel)
    save_checkpoint = _Held("runs", RunStore.save_checkpoint)
    get_run = _Held("runs", RunStore.get_run)
    list_runs = _Held("runs", RunStore.list_runs)
    count_runs = _Held("runs", RunStore.count_runs)
    active_runs = _Held("runs", RunStore.active_runs)
    recent_runs_of_jobs = _Held("runs", RunStore.recent_runs_of_jobs)
    count_stale = _Held("runs", RunStore.count_stale)
    active_counts = _Held("runs", RunStore.active_counts)
    count_started = _Held("runs", RunStore.count_started)

    # -- liveness (liveness.py) -----------------------------------------

    heartbeat = _Held("liveness", LivenessStore.heartbeat)
    stale_runs = _Held("liveness", LivenessStore.stale_runs)
    transition_many = _Held("liveness", LivenessStore.transition_many)
    insert_items_fenced = _Held("liveness", LivenessStore.insert_items_fenced)
    finalize_run = _Held("liveness", LivenessStore.finalize_run)

    # -- jobs (jobs.py) -------------------------------------------------

    ensure_job = _Held("jobs", JobStore.ensure_job)
    get_job = _Held("jobs", JobStore.get_job)
    provider_job_counts = _Held("jobs", JobStore.provider_job_counts)
    list_jobs = _Held("jobs", JobStore.list_jobs)
    job_providers = _Held("jobs", JobStore.job_providers)
    get_jobs = _Held("jobs", JobStore.get_jobs)
    recent_outcomes = _Held("jobs", JobStore.recent_outcomes)
    claim_tick = _Held("jobs", JobStore.claim_tick)
    skip_tick = _Held("jobs", JobStore.skip_tick)

    # -- history (history.py) -------------------------------------------

    insert_items = _Held("history", HistoryStore.insert_items)
    list_items = _Held("history", HistoryStore.list_items)
    item_group_counts = _Held("history", HistoryStore.item_group_counts)
    prune_batch = _Held("history", HistoryStore.prune_batch)
    set_pause = _Held("history", HistoryStore.set_pause)
    delete_pause = _Held("history", HistoryStore.delete_pause)
    active_pauses = _Held("history", HistoryStore.active_pauses)
    job_tallies = _Held("history", HistoryStore.job_tallies)
    mark_maintenance = _Held("history", HistoryStore.mark_maintenance)
    claim_maintenance = _Held("history", HistoryStore.claim_maintenance)
    last_maintenance = _Held("history", HistoryStore.last_maintenance)

    # -- carry (carry.py) -----------------------------------------------

    owes = _Held("carry", CarryStore.owes)
    owed = _Held("carry", CarryStore.owed)
    carried = _Held("carry", CarryStore.carried)
    forget = _Held("carry", CarryStore.forget)

    # -- sessions (sessions.py) -----------------------------------------

    revoke_session = _Held("sessions", SessionStore.revoke_session)
    session_revoked = _Held("sessions", SessionStore.session_revoked)

    # -- queue (queue.py) -------------------------------------------------

    enqueue = _Held("queue", QueueStore.enqueue)
    claim_next = _Held("queue", QueueStore.claim_next)
    claim_run = _Held("queue", QueueStore.claim_run)
    start_now = _Held("queue", QueueStore.start_now)
    set_provider_limit = _Held("queue", QueueStore.set_provider_limit)
    provider_limits = _Held("queue", QueueStore.provider_limits)
    running_of_provider = _Held("queue", QueueStore.running_of_provider)
    pending_of = _Held("queue", QueueStore.pending_of)
