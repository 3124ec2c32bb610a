"""The ledger: runtrack's public Python API.

``Ledger(url)`` opens (and by default migrates) the database; ``ledger.run()``
records one run around a block of code. The ledger holds one part per
concern and hands each public method to its part: :mod:`runtrack.lifecycle`
(starting and finalizing runs), :mod:`runtrack.queries` (reading) and
:mod:`runtrack.control` (cancel, reap, prune, pauses). Every method validates
its input and calls the store; interfaces (CLI, HTTP API, dashboard, runner)
call only the ledger.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

from sqlalchemy import Engine

from runtrack import inputs
from runtrack.backfiller import Backfiller
from runtrack.clock import Clock, DatabaseClock
from runtrack.config import Settings, check_options, timing
from runtrack.context import ClaimedContext, RunContext, tracked
from runtrack.control import Control
from runtrack.errors import InvalidInput, describe
from runtrack.events import Events, RunListener
from runtrack.incidents import Alerting
from runtrack.lifecycle import Lifecycle
from runtrack.models import (
    TERMINAL,
    RunRecord,
    RunStatus,
)
from runtrack.overview import Overview
from runtrack.pauses import Pauses
from runtrack.queries import Queries
from runtrack.queue import Queue
from runtrack.reaper import Reaper
from runtrack.run import Run
from runtrack.start import StartOptions, StartRequest
from runtrack.store import dialects, migrate
from runtrack.store.sql import Store
from runtrack.watching import Watch
from runtrack.workers import Workers

__all__ = ["Ledger"]

log = logging.getLogger("runtrack")
P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_URL = "sqlite:///runtrack.db"
MAX_PENDING_TTL = timedelta(days=366)


def _part(part: str, method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """A public method of the :class:`Ledger` that one of its parts
    implements: the ledger hands the call to ``self.<part>``."""
    name = method.__name__

    def delegate(ledger: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        method_of_part: Callable[P, R] = getattr(getattr(ledger, part), name)
        try:
            return method_of_part(*args, **kwargs)
        except TypeError:
            _check_arguments(method, args, kwargs)
            raise  # the arguments fit: raised inside, not bad input

    return functools.update_wrapper(delegate, method)


def _check_arguments(method: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> None:
    """:class:`InvalidInput` if ``args`` and ``kwargs`` do not fit ``method``'s
    signature (a misspelt keyword, a missing argument), naming what it takes,
    rather than a ``TypeError`` that names the ledger's internal part."""
    signature = inspect.signature(method)
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        names = [p for p in signature.parameters if p != "self"]
        unknown = sorted(set(kwargs) - set(names))
        field = ", ".join(unknown) or "arguments"
        problem = "unknown keyword" if unknown else str(exc)
        raise InvalidInput(field, problem, ", ".join(names)) from None


class Ledger:
    """The run ledger on one database.

    ``url`` defaults to ``RUNTRACK_DATABASE_URL``, else ``sqlite:///runtrack.db``.
    An ``engine`` given by the caller is used as is and never disposed.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: Engine | None = None,
        clock: Clock | None = None,
        migrate: bool = True,
        heartbeat_interval: float = 15.0,
        stale_after: timedelta | float | None = None,
        cancel_grace: timedelta | float = 30.0,
        item_batch_size: int = 500,
        finalize_timeout: float = 60.0,
        worker_id: str | None = None,
        listeners: Sequence[RunListener] = (),
        pending_ttl: timedelta | float | str = "24h",
    ) -> None:
        if engine is not None and url is not None:
            raise InvalidInput("url/engine", "give one of them, not both")
        check_options(url, finalize_timeout, worker_id, listeners)
        # The same rules as Settings: a stale threshold within the heartbeat
        # interval would reap healthy runs.
        checked = timing(heartbeat_interval, stale_after, cancel_grace)
        self.heartbeat_interval = checked.heartbeat_interval
        self.stale_after = checked.stale_after
        self.cancel_grace = checked.cancel_grace
        self.item_batch_size = inputs.positive_int("item_batch_size", item_batch_size)
        #: How long a queued run waits for a worker before it expires (issue 17).
        self.pending_ttl = inputs.duration("pending_ttl", pending_ttl)
        if self.pending_ttl > MAX_PENDING_TTL:  # the reaper subtracts it from now
            raise InvalidInput("pending_ttl", f"got {self.pending_ttl}", "at most 366 days")
        self.finalize_timeout = finalize_timeout
        # An empty url is a mistake, not a request for the default database.
        self.url = (
            url if url is not None else os.environ.get("RUNTRACK_DATABASE_URL") or DEFAULT_URL
        )
        self._owns_engine = engine is None
        self.engine = engine if engine is not None else dialects.make_engine(self.url)
        self.store = store = Store(self.engine)
        if migrate:
            self.migrate()
        self.clock: Clock = clock or DatabaseClock(store.tx.server_now)
        self.host = socket.gethostname()
        #: Integrations told about committed starts and finishes (OpenLineage, ...).
        self.events = Events(listeners, store.runs.get_run)
        runs, jobs, history, liveness = store.runs, store.jobs, store.history, store.liveness
        reaper = Reaper(
            liveness, history, store.workers, self.stale_after, self.cancel_grace, self.pending_ttl
        )
        overview = Overview(runs, jobs, history, self.stale_after)
        self._queries = Queries(
            runs, jobs, history, store.carry, self.clock, self.stale_after, overview
        )
        self._lifecycle = Lifecycle(
            runs,
            liveness,
            jobs,
            store.queue,
            store.carry,
            self.clock,
            self.events,
            reaper,
            self._queries,
            heartbeat_interval=self.heartbeat_interval,
            item_batch_size=self.item_batch_size,
            finalize_timeout=finalize_timeout,
            host=self.host,
            worker_id=worker_id or f"{self.host}:{os.getpid()}",
        )
        self._heartbeat = self._lifecycle.heartbeat
        self._queue = Queue(
            jobs, store.queue, store.backfills, self.clock, self._lifecycle, self._queries
        )
        self._backfiller = Backfiller(jobs, liveness, store.backfills, self.clock)
        self._watch = Watch(store.alerts, runs, jobs, self.now, self._queries)
        self._lifecycle.finalizer.alerts = self  # the volume guard reads self.alerting
        self._workers = Workers(store.workers, self.clock, self.stale_after, self.host)
        self._control = Control(
            runs,
            history,
            store.sessions,
            store.carry,
            store.workers,
            self.clock,
            self.events,
            self._heartbeat,
            reaper,
            Pauses(history),
            self._queries,
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **options: Any) -> Ledger:
        """A ledger configured from :class:`Settings` (default: the environment),
        emitting OpenLineage events when ``RUNTRACK_OPENLINEAGE_*`` asks for them."""
        from runtrack.lineage import listeners_from_settings  # openlineage only if configured

        s = settings or Settings.from_env()
        listeners = [*options.pop("listeners", ()), *listeners_from_settings(s)]
        return cls(
            s.database_url,
            heartbeat_interval=s.heartbeat_interval,
            stale_after=s.stale_after,
            cancel_grace=s.cancel_grace,
            listeners=listeners,
            **options,
        )

    @property
    def worker_id(self) -> str:
        """Recorded on each run this ledger starts (default ``host:pid``)."""
        return self._lifecycle.worker_id

    @worker_id.setter
    def worker_id(self, value: str) -> None:
        self._lifecycle.worker_id = value

    # -- lifecycle -----------------------------------------------------------

    def migrate(self) -> None:
        """Apply pending schema migrations (idempotent, safe from many processes)."""
        migrate.upgrade(self.engine)

    def schema_revision(self) -> tuple[str | None, str]:
        """The database's schema revision (``None``: empty) and the one this
        version of runtrack expects."""
        return migrate.current_revision(self.engine), migrate.head_revision()

    def close(self) -> None:
        """Stop the heartbeat thread; dispose the engine only if the ledger made it."""
        self._heartbeat.stop()
        self.events.close()
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        """The ledger's current time (the database's, unless a clock was injected)."""
        return self.clock.now()

    def __repr__(self) -> str:
        return f"<Ledger {self.engine.url.render_as_string(hide_password=True)}>"

    # -- reading: runtrack.queries ---------------------------------------------

    get_run = _part("_queries", Queries.get_run)
    list_runs = _part("_queries", Queries.list_runs)
    run_filter = _part("_queries", Queries.run_filter)
    count_runs = _part("_queries", Queries.count_runs)
    recent_runs = _part("_queries", Queries.recent_runs)
    last_successful_run = _part("_queries", Queries.last_successful_run)
    active_runs = _part("_queries", Queries.active_runs)
    recent_runs_of_jobs = _part("_queries", Queries.recent_runs_of_jobs)
    recent_outcomes = _part("_queries", Queries.recent_outcomes)
    count_stale = _part("_queries", Queries.count_stale)
    count_started = _part("_queries", Queries.count_started)
    list_runs_by_page = _part("_queries", Queries.list_runs_by_page)
    job_states = _part("_queries", Queries.job_states)
    job_state = _part("_queries", Queries.job_state)
    providers = _part("_queries", Queries.providers)
    job_tallies = _part("_queries", Queries.job_tallies)
    health = _part("_queries", Queries.health)
    list_items = _part("_queries", Queries.list_items)
    group_summary = _part("_queries", Queries.group_summary)
    get_job = _part("_queries", Queries.get_job)
    jobs = _part("_queries", Queries.jobs)
    job_providers = _part("_queries", Queries.job_providers)
    carried = _part("_queries", Queries.carried)
    watermark = _part("_queries", Queries.watermark)
    get_jobs = _part("_queries", Queries.get_jobs)
    ensure_job = _part("_queries", Queries.ensure_job)
    claim_tick = _part("_queries", Queries.claim_tick)
    skip_tick = _part("_queries", Queries.skip_tick)
    claim_maintenance = _part("_queries", Queries.claim_maintenance)

    # -- control: runtrack.control ---------------------------------------------

    cancel = _part("_control", Control.cancel)
    reap = _part("_control", Control.reap)
    prune = _part("_control", Control.prune)
    pause = _part("_control", Control.pause)
    resume = _part("_control", Control.resume)
    paused = _part("_control", Control.paused)
    pauses = _part("_control", Control.pauses)
    revoke_session = _part("_control", Control.revoke_session)
    session_revoked = _part("_control", Control.session_revoked)
    last_maintenance = _part("_control", Control.last_maintenance)
    forget_carried = _part("_control", Control.forget_carried)
    heartbeat_now = _part("_control", Control.heartbeat_now)

    # -- the queue, backfills and workers (issue 17) ------------------------------

    trigger = _part("_queue", Queue.trigger)
    rerun = _part("_queue", Queue.rerun)
    retry_queued = _part("_queue", Queue.retry)
    claim = _part("_queue", Queue.claim)
    limit_provider = _part("_queue", Queue.limit_provider)
    provider_limits = _part("_queue", Queue.provider_limits)
    pending_count = _part("_queue", Queue.pending_count)
    backfill = _part("_backfiller", Backfiller.backfill)
    resume_backfill = _part("_backfiller", Backfiller.resume_backfill)
    cancel_backfill = _part("_backfiller", Backfiller.cancel_backfill)
    get_backfill = _part("_backfiller", Backfiller.get_backfill)
    backfills = _part("_backfiller", Backfiller.backfills)
    backfill_windows = _part("_backfiller", Backfiller.backfill_windows)
    workers = _part("_workers", Workers.workers)
    register_worker = _part("_workers", Workers.register_worker)
    worker_seen = _part("_workers", Workers.worker_seen)
    worker_stopped = _part("_workers", Workers.worker_stopped)

    # -- running -------------------------------------------------------------

    def run(self, job: str, **options: Unpack[StartOptions]) -> RunContext:
        """Record one run around a ``with`` (or ``async with``) block.

        Leaving the block finalizes the run: ``success``; ``partial`` if
        ``run.error()`` was called or an item failed; ``failed`` with the
        exception (re-raised unchanged); ``cancelled`` on a cancel request
        (not re-raised). Raises :class:`JobBusy` if the job already has
        ``concurrency`` active runs that are not stale.

        The run covers ``run.window``: from the job's watermark (where its last
        success/partial run's window ended) to ``window_end`` (default: the
        run's start, database time). Ending success/partial moves the watermark
        there. An explicit ``window_start`` is a backfill, which leaves the
        watermark alone unless ``advance_watermark=True``.

        ``on_partial`` says what a ``partial`` end does with what failed:
        ``"carry"`` (items that ended ``error`` and slices reported with
        ``run.failed_slice`` are handed to the next runs as ``run.carried``,
        one running run at a time, until they succeed; every success/partial
        run they were offered counts an attempt, read or not, and after
        ``max_carry_attempts`` they are given up, kept and shown), ``"hold"`` (the watermark stays
        where it was) or ``"advance"`` (move on, forget them). The options
        are those of :class:`~runtrack.start.StartOptions`.
        """
        request = StartRequest.of(job, options)
        return RunContext(self._lifecycle, request)

    def claimed(self, run: Run) -> ClaimedContext:
        """A ``with`` block around a run claimed from the queue (:meth:`claim`,
        ``start_run(run_id=...)``): leaving it finalizes the run as
        :meth:`run`'s block does."""
        if not isinstance(run, Run):
            raise InvalidInput("run", f"got {describe(run)}", "a Run handle")
        return ClaimedContext(self._lifecycle, run)

    def tracked(
        self, job: str, **options: Unpack[StartOptions]
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a sync or async function so that each call is one run.
        The function gets the ``Run`` as keyword ``run`` if it declares it,
        and always through :func:`runtrack.current_run`."""
        StartRequest.of(job, options)
        return tracked(lambda: self.run(job, **options))

    def create_run(self, job: str, **options: Unpack[StartOptions]) -> RunRecord:
        """Record a run as requested (``pending``, queued like a trigger): it
        holds no lease until started (by :meth:`start_run` with its id, or a
        runner serving the job); unstarted, it expires after ``pending_ttl``
        unless a live worker serves its job. Same options as :meth:`run`."""
        return self._queue.create(StartRequest.of(job, options))

    def start_run(
        self,
        job: str | None = None,
        *,
        run_id: int | None = None,
        **options: Unpack[StartOptions],
    ) -> Run:
        """Start a run and return its handle; finish it with :meth:`finish_run`
        (for code that cannot use a block). With ``run_id``, claim that pending
        run (taking one of ``concurrency`` lease slots of its job, option
        ``concurrency``, default 1: :class:`JobBusy` if none is free)."""
        if run_id is not None:
            unknown = set(options) - {"concurrency"}
            if unknown:
                raise InvalidInput(", ".join(sorted(unknown)), "unknown option", "concurrency")
            concurrency = inputs.positive_int(
                "concurrency", options.get("concurrency", 1), limit=1000
            )
            return self._lifecycle.start_pending(inputs.positive_int("run_id", run_id), concurrency)
        if job is None:
            raise InvalidInput("job", "is missing", "a job key, or run_id of a pending run")
        return self._lifecycle.open(StartRequest.of(job, options))

    def finish_run(
        self,
        run: Run | int,
        status: RunStatus | str = RunStatus.SUCCESS,
        *,
        counters: dict[str, int | float] | None = None,
        error: BaseException | str | None = None,
        error_type: str | None = None,
        error_details: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Finalize a run started with :meth:`start_run` (or a pending run, by id).
        ``error_type`` overrides the one derived from ``error`` (e.g. ``"timeout"``);
        ``error_details`` (JSON) are added to the run's error details."""
        target = inputs.choice("status", status, RunStatus)
        if target not in TERMINAL:
            raise InvalidInput("status", f"got {target}", ", ".join(sorted(TERMINAL)))
        inputs.json_value("counters", counters, mapping=True)
        for name, value in (counters or {}).items():
            inputs.key("counter name", name)
            inputs.number("counter value", value)
        if error is not None and not isinstance(error, BaseException):
            inputs.text("error", error)
        inputs.key("error_type", error_type, optional=True)
        inputs.json_value("error_details", error_details, mapping=True)
        run_id = run.id if isinstance(run, Run) else inputs.positive_int("run", run)
        handle = run if isinstance(run, Run) else self._heartbeat.get(run_id)
        if handle is None:
            return self._lifecycle.finalizer.finish_by_id(
                run_id, target, counters or {}, error, error_type, error_details
            )
        for name, value in (counters or {}).items():
            handle.set_counter(name, value)
        self._lifecycle.finalizer.finalize(handle, target, error, error_type, error_details)
        return self.get_run(handle.id)

    # -- health, expectations, incidents (runtrack.watching) ----------------------

    @property
    def alerting(self) -> Alerting:
        """The part that checks expectations and notifies (made on first use)."""
        return self._watch.alerting

    expect = _part("_watch", Watch.expect)
    expectations = _part("_watch", Watch.expectations)
    check = _part("_watch", Watch.check)
    incidents = _part("_watch", Watch.incidents)
    deliver = _part("_watch", Watch.deliver)
    deliveries = _part("_watch", Watch.deliveries)
    count_failed = _part("_watch", Watch.count_failed)
    healths = _part("_watch", Watch.healths)
    job_health = _part("_watch", Watch.job_health)
