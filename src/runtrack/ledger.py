"""The ledger: runtrack's public Python API.

``Ledger(url)`` opens (and by default migrates) the database; ``ledger.run()``
records one run around a block of code. The class is assembled from one part
per concern: :mod:`runtrack.lifecycle` (starting and finalizing runs),
:mod:`runtrack.queries` (reading) and :mod:`runtrack.control` (cancel, reap,
prune, pauses). Every method validates its input and calls the store;
interfaces (CLI, HTTP API, dashboard, runner) call only the ledger.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine

from runtrack import inputs
from runtrack.clock import Clock, DatabaseClock
from runtrack.config import Settings
from runtrack.context import RunContext, tracked
from runtrack.control import LedgerControl
from runtrack.errors import (
    InvalidInput,
    describe,
)
from runtrack.events import Events, RunListener
from runtrack.heartbeat import Heartbeat
from runtrack.lifecycle import RunLifecycle
from runtrack.models import (
    TERMINAL,
    RunRecord,
    RunStatus,
)
from runtrack.overview import Overview
from runtrack.pauses import Pauses
from runtrack.reaper import Reaper
from runtrack.run import Run
from runtrack.store import dialects, migrate
from runtrack.store.sql import (
    Store,
)

__all__ = ["Ledger"]

log = logging.getLogger("runtrack")
P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_URL = "sqlite:///runtrack.db"


class Ledger(RunLifecycle, LedgerControl):
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
    ) -> None:
        if engine is not None and url is not None:
            raise InvalidInput("url/engine", "give one of them, not both")
        _check_options(url, heartbeat_interval, finalize_timeout, worker_id, listeners)
        self.heartbeat_interval = float(heartbeat_interval)
        default_stale = max(4 * self.heartbeat_interval, 60.0)
        # Both are subtracted from now: bounded so that the result is a date.
        self.stale_after = inputs.duration(
            "stale_after", stale_after or default_stale, limit=inputs.MAX_DURATION
        )
        self.cancel_grace = inputs.duration("cancel_grace", cancel_grace, limit=inputs.MAX_DURATION)
        self.item_batch_size = inputs.positive_int("item_batch_size", item_batch_size)
        self.finalize_timeout = finalize_timeout
        # An empty url is a mistake, not a request for the default database.
        self.url = (
            url if url is not None else os.environ.get("RUNTRACK_DATABASE_URL") or DEFAULT_URL
        )
        self._owns_engine = engine is None
        self.engine = engine if engine is not None else dialects.make_engine(self.url)
        self.store = Store(self.engine)
        if migrate:
            self.migrate()
        self.clock: Clock = clock or DatabaseClock(self.store.server_now)
        self.host = socket.gethostname()
        self.worker_id = worker_id or f"{self.host}:{os.getpid()}"
        self._reaper = Reaper(self.store, self.stale_after, self.cancel_grace)
        self._pauses = Pauses(self.store)
        self._overview = Overview(self.store, self.stale_after)
        self._heartbeat = Heartbeat(
            self.store, self.clock, self.heartbeat_interval, self._flush_items_of
        )
        self._known_jobs: set[str] = set()
        # One item flush at a time: rows reach run_items in the order they
        # were recorded, and finalization waits for a flush in flight.
        self._items_lock = threading.Lock()
        #: Integrations told about committed starts and finishes (OpenLineage, ...).
        self.events = Events(listeners, self.store.get_run)

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

    # -- running -------------------------------------------------------------

    def run(
        self,
        job: str,
        *,
        provider: str | None = None,
        params: dict[str, Any] | None = None,
        triggered_by: str = "system",
        concurrency: int = 1,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        advance_watermark: bool | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
        retry_policy: dict[str, Any] | None = None,
    ) -> RunContext:
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
        """
        request = dict(
            job=job,
            provider=provider,
            params=params,
            triggered_by=triggered_by,
            concurrency=concurrency,
            window_start=window_start,
            window_end=window_end,
            advance_watermark=advance_watermark,
            attempt=attempt,
            retry_of=retry_of,
            retry_policy=retry_policy,
        )
        self._validate_start(request)
        return RunContext(self, request)

    def tracked(self, job: str, **options: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a sync or async function so that each call is one run.
        The function gets the ``Run`` as keyword ``run`` if it declares it,
        and always through :func:`runtrack.current_run`."""
        self._validate_start(dict(options, job=job))
        return tracked(self, job, options)

    def create_run(self, job: str, **options: Any) -> RunRecord:
        """Record a run as requested (``pending``); it holds the job's lease
        until started, cancelled or reaped. Same options as :meth:`run`."""
        request = dict(options, job=job)
        self._validate_start(request)
        started = self._insert(request, RunStatus.PENDING)
        return self.get_run(started.started.id)

    def start_run(
        self, job: str | None = None, *, run_id: int | None = None, **options: Any
    ) -> Run:
        """Start a run and return its handle; finish it with :meth:`finish_run`
        (for code that cannot use a block). With ``run_id``, start that pending run."""
        if run_id is not None:
            return self._start_pending(run_id)
        if job is None:
            raise InvalidInput("job", "is missing", "a job key, or run_id of a pending run")
        request = dict(options, job=job)
        self._validate_start(request)
        return self._open(request)

    def finish_run(
        self,
        run: Run | int,
        status: RunStatus | str = RunStatus.SUCCESS,
        *,
        counters: dict[str, int | float] | None = None,
        error: BaseException | str | None = None,
        error_type: str | None = None,
    ) -> RunRecord:
        """Finalize a run started with :meth:`start_run` (or a pending run, by id).
        ``error_type`` overrides the one derived from ``error`` (e.g. ``"timeout"``)."""
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
        run_id = run.id if isinstance(run, Run) else inputs.positive_int("run", run)
        handle = run if isinstance(run, Run) else self._heartbeat.get(run_id)
        if handle is None:
            return self._finish_by_id(run_id, target, counters or {}, error, error_type)
        for name, value in (counters or {}).items():
            handle.set_counter(name, value)
        self._finalize(handle, target, error, error_type)
        return self.get_run(handle.id)


def _check_options(
    url: object,
    heartbeat_interval: object,
    finalize_timeout: object,
    worker_id: object,
    listeners: object,
) -> None:
    """Refuse bad options when the ledger is made, not when a run trips over them."""
    if url is not None and not isinstance(url, str):
        raise InvalidInput("url", f"got {type(url).__name__}", "a database URL string")
    interval = inputs.number("heartbeat_interval", heartbeat_interval)
    if not 0.05 <= interval <= 86400:
        raise InvalidInput("heartbeat_interval", f"got {interval}", "seconds from 0.05 to 86400")
    timeout = inputs.number("finalize_timeout", finalize_timeout)
    if not 0 <= timeout <= 86400:
        raise InvalidInput("finalize_timeout", f"got {timeout}", "seconds from 0 to 86400")
    inputs.key("worker_id", worker_id, optional=True)
    if not isinstance(listeners, list | tuple) or not all(
        isinstance(listener, RunListener) for listener in listeners
    ):
        raise InvalidInput(
            "listeners", f"got {describe(listeners)}", "a list of RunListener objects"
        )
