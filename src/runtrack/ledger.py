"""The ledger: runtrack's public Python API.

``Ledger(url)`` opens (and by default migrates) the database; ``ledger.run()``
records one run around a block of code. Queries, cancellation, reaping,
retention and provider pauses are methods here; they validate their input and
call the store. Interfaces (CLI, HTTP API, dashboard, runner) call only this.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from runtrack import inputs
from runtrack.clock import Clock, DatabaseClock
from runtrack.config import Settings
from runtrack.context import RunContext, tracked
from runtrack.errors import (
    DatabaseUnavailable,
    InvalidCursor,
    InvalidInput,
    InvalidTransition,
    JobBusy,
    LeaseLost,
    RunNotCancellable,
    RunNotFound,
)
from runtrack.events import Events, RunListener
from runtrack.heartbeat import Heartbeat
from runtrack.logs import run_fields
from runtrack.models import (
    ALLOWED_FROM,
    TERMINAL,
    GroupSummary,
    Health,
    ItemRecord,
    ItemStatus,
    JobRecord,
    JobState,
    JobTally,
    NumberedPage,
    Page,
    PauseRecord,
    ProviderState,
    PruneResult,
    RunBrief,
    RunRecord,
    RunStatus,
    Window,
)
from runtrack.overview import Overview
from runtrack.pauses import Pauses
from runtrack.reaper import Reaper
from runtrack.retention import prune
from runtrack.run import Run
from runtrack.store import dialects, migrate
from runtrack.store.rows import aware, naive
from runtrack.store.sql import (
    JobEffect,
    LeaseTaken,
    RunFilter,
    StartedRun,
    Store,
    WindowBeforeWatermark,
)

__all__ = ["Ledger"]

log = logging.getLogger("runtrack")
P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_URL = "sqlite:///runtrack.db"
MAX_PAGE = 1000


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
    ) -> None:
        if engine is not None and url is not None:
            raise InvalidInput("url/engine", "give one of them, not both")
        if not isinstance(heartbeat_interval, int | float) or heartbeat_interval < 0.05:
            raise InvalidInput(
                "heartbeat_interval", f"got {heartbeat_interval!r}", "seconds >= 0.05"
            )
        self.url = url or os.environ.get("RUNTRACK_DATABASE_URL") or DEFAULT_URL
        self._owns_engine = engine is None
        self.engine = engine if engine is not None else dialects.make_engine(self.url)
        self.store = Store(self.engine)
        if migrate:
            self.migrate()
        self.clock: Clock = clock or DatabaseClock(self.store.server_now)
        self.heartbeat_interval = float(heartbeat_interval)
        default_stale = max(4 * self.heartbeat_interval, 60.0)
        self.stale_after = inputs.duration("stale_after", stale_after or default_stale)
        self.cancel_grace = inputs.duration("cancel_grace", cancel_grace)
        self.item_batch_size = inputs.positive_int("item_batch_size", item_batch_size)
        self.finalize_timeout = finalize_timeout
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
        for name, value in (counters or {}).items():
            inputs.key("counter name", name)
            inputs.number("counter value", value)
        handle = run if isinstance(run, Run) else self._heartbeat.get(run)
        if handle is None:
            return self._finish_by_id(int(run), target, counters or {}, error, error_type)  # type: ignore[arg-type]
        for name, value in (counters or {}).items():
            handle.set_counter(name, value)
        self._finalize(handle, target, error, error_type)
        return self.get_run(handle.id)

    # -- starting (internal) -----------------------------------------------------

    def _validate_start(self, r: dict[str, Any]) -> None:
        inputs.key("job", r["job"])
        inputs.key("provider", r.get("provider"), optional=True)
        inputs.json_value("params", r.get("params"), mapping=True)
        inputs.key("triggered_by", r.get("triggered_by", "system"))
        inputs.positive_int("concurrency", r.get("concurrency", 1), limit=1000)
        inputs.positive_int("attempt", r.get("attempt", 1))
        if r.get("retry_of") is not None:
            inputs.positive_int("retry_of", r["retry_of"])
        inputs.json_value("retry_policy", r.get("retry_policy"), mapping=True)
        inputs.flag("advance_watermark", r.get("advance_watermark"), optional=True)
        start = inputs.timestamp("window_start", r.get("window_start"))
        end = inputs.timestamp("window_end", r.get("window_end"))
        if start is not None and end is not None and start > end:
            raise InvalidInput(
                "window_start",
                f"{start.isoformat()} is after window_end {end.isoformat()}",
                "window_start <= window_end",
            )
        unknown = set(r) - _START_OPTIONS
        if unknown:
            raise InvalidInput(
                ", ".join(sorted(unknown)), "unknown option", ", ".join(sorted(_START_OPTIONS))
            )

    def _open(self, request: dict[str, Any]) -> Run:
        started = self._insert(request, RunStatus.RUNNING)
        run = self._handle(started, request)
        self.events.started(run.id)
        return run

    def _insert(self, r: dict[str, Any], status: RunStatus) -> _Started:
        now = self.clock.now()
        job, provider = r["job"], r.get("provider")
        explicit = r.get("window_start") is not None
        end, moves = self._window_end(r, now)
        if job not in self._known_jobs:
            self.store.ensure_job(job, provider, now)
            self._known_jobs.add(job)
        values = {
            "uid": str(uuid.uuid4()),
            "job_key": job,
            "provider": provider,
            "status": status.value,
            "attempt": r.get("attempt", 1),
            "retry_of": r.get("retry_of"),
            "triggered_by": r.get("triggered_by", "system"),
            "params": r.get("params"),
            "host": self.host,
            "pid": os.getpid(),
            "worker_id": self.worker_id,
            "created_at": naive(now),
            "counters": {},
            "progress_done": 0,
            "window_end": naive(end),
            "window_start": naive(inputs.timestamp("window_start", r.get("window_start"))),
            "moves_watermark": moves,
            "retry_policy": r.get("retry_policy"),
            "items_success": 0,
            "items_not_found": 0,
            "items_skipped": 0,
            "items_error": 0,
        }
        if status is RunStatus.RUNNING:
            values.update(started_at=naive(now), heartbeat_at=naive(now))
        slots = [f"{job}#{i}" for i in range(r.get("concurrency", 1))]
        insert = functools.partial(
            self._insert_run, values, slots, explicit, r.get("window_end") is not None
        )
        try:
            started = insert()
        except LeaseTaken as taken:
            holders = [run_id for run_id, _ in taken.holders]
            reaped = self._reaper.reap_if_stale(holders, now)
            if not reaped:
                raise JobBusy(job, holders, len(slots)) from None
            for run_id in reaped:
                log.warning(
                    "run %s of %s reaped before a new start: no heartbeat",
                    run_id,
                    job,
                    extra={"run_id": run_id, "job": job, "provider": provider, "status": "failed"},
                )
                self.events.finished(run_id)
            try:
                started = insert()
            except LeaseTaken as again:  # another process took the freed slot first
                raise JobBusy(job, [i for i, _ in again.holders], len(slots)) from None
        return _Started(started, values, now, aware(started.window_end) or end)

    @staticmethod
    def _window_end(r: dict[str, Any], now: datetime) -> tuple[datetime, bool]:
        """The run's window end (default: now) and whether it moves the watermark."""
        end = inputs.timestamp("window_end", r.get("window_end")) or now
        advance = r.get("advance_watermark")
        moves = (r.get("window_start") is None) if advance is None else advance
        if moves and end > now:
            # The watermark would pass records that are not published yet.
            raise InvalidInput(
                "window_end",
                f"{end.isoformat()} is after the run's start {now.isoformat()}; records "
                "published in between would never be fetched",
                "a time at or before now, or advance_watermark=False",
            )
        return end, moves

    def _insert_run(
        self, values: dict[str, Any], slots: list[str], explicit: bool, explicit_end: bool
    ) -> StartedRun:
        try:
            return self.store.insert_run(
                values, slots, explicit_window=explicit, explicit_end=explicit_end
            )
        except WindowBeforeWatermark as early:
            raise InvalidInput(
                "window_end",
                f"{values['window_end'].isoformat()}Z is before the job's watermark "
                f"{early.watermark.isoformat()}Z, where this run's window starts",
                "a time at or after the watermark, or an explicit window_start (a backfill)",
            ) from None

    def _handle(self, s: _Started, request: dict[str, Any]) -> Run:
        run = Run(
            self,
            id=s.started.id,
            uid=s.values["uid"],
            job=request["job"],
            provider=request.get("provider"),
            attempt=request.get("attempt", 1),
            params=request.get("params"),
            window=Window(aware(s.started.window_start), s.window_end),
            previous_checkpoint=s.started.job_checkpoint,
            resume_checkpoint=s.started.resume_checkpoint,
            started_at=s.now,
            item_batch_size=self.item_batch_size,
            moves_watermark=s.values["moves_watermark"],
        )
        self._heartbeat.register(run)
        if log.isEnabledFor(logging.DEBUG):  # skip building the fields on the hot path
            log.debug("run %s of %s started", run.id, run.job, extra=run_fields(run))
        return run

    def _start_pending(self, run_id: int) -> Run:
        record = self.get_run(run_id)
        now = self.clock.now()
        changed = self.store.transition(
            run_id,
            RunStatus.RUNNING,
            ALLOWED_FROM[RunStatus.RUNNING],
            {
                "started_at": naive(now),
                "heartbeat_at": naive(now),
                "host": self.host,
                "pid": os.getpid(),
                "worker_id": self.worker_id,
            },
        )
        if not changed:
            raise InvalidTransition(run_id, self.get_run(run_id).status, RunStatus.RUNNING)
        job = self.store.get_job(record.job)
        run = Run(
            self,
            id=run_id,
            uid=record.uid,
            job=record.job,
            provider=record.provider,
            attempt=record.attempt,
            params=record.params,
            window=record.window,
            previous_checkpoint=job.checkpoint if job else None,
            resume_checkpoint=record.checkpoint,  # set at creation (see Store.insert_run)
            started_at=now,
            item_batch_size=self.item_batch_size,
            moves_watermark=record.moves_watermark,
        )
        self._heartbeat.register(run)
        self.events.started(run_id)
        return run

    # -- finalizing (internal; called by RunContext and finish_run) ----------------

    def _finalize(
        self,
        run: Run,
        status: RunStatus,
        error: BaseException | str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Flush and finalize once. Raises LeaseLost if the run was taken away."""
        self._heartbeat.unregister(run)
        values = run._final_values()
        values["finished_at"] = naive(self.clock.now())
        values.update(_error_fields(error, error_type))
        with self._items_lock:  # a heartbeat flush of this run's items ends first
            items = run._take_items()
        attempts = 0

        def write() -> bool | None:
            nonlocal attempts
            attempts += 1
            return self._write_final(run, status, values, items)

        changed = self._with_finalize_retries(write)
        current = None if changed else self.store.get_run(run.id)
        # After a failed attempt the stored end may be ours with only its answer
        # lost (``None``: the store retried one); without one, equal values are
        # another finisher's at the same clock reading, and this call lost.
        ours = (status, aware(values["finished_at"]))
        retried = attempts > 1 or changed is None
        if retried and current and (current.status, current.finished_at) == ours:
            changed = True
        if not changed:
            run.status = current.status if current else RunStatus.FAILED
            raise LeaseLost(run.id, current.status if current else None)
        run.status = status
        self.events.finished(run.id)
        log.info(
            "run %s of %s ended %s",
            run.id,
            run.job,
            status,
            extra={
                "run_id": run.id,
                "job": run.job,
                "provider": run.provider,
                "status": status.value,
            },
        )

    def _write_final(
        self, run: Run, status: RunStatus, values: dict[str, Any], items: list[dict[str, Any]]
    ) -> bool | None:
        self._stamp_items(items)
        effect = JobEffect(
            run.job,
            naive(run.window.end),
            run.moves_watermark,
            run.checkpoint,
            naive(run.started_at),
        )
        # Fenced, with the last items in the same transaction: a run reaped
        # meanwhile gets neither its final values nor these items.
        return self.store.finalize_run(run.id, run.uid, status, values, effect, items)

    def _with_finalize_retries(self, write: Callable[[], bool | None]) -> bool | None:
        # The database may be away for a while; keep trying for a bounded time.
        # If it never comes back the run stops heartbeating and is reaped. The
        # first attempt runs bare: building the policy costs more than the write.
        with contextlib.suppress(DatabaseUnavailable):
            return write()
        retrying = Retrying(
            retry=retry_if_exception_type(DatabaseUnavailable),
            wait=wait_exponential(multiplier=0.1, max=5.0),
            stop=stop_after_delay(self.finalize_timeout),
            reraise=True,
        )
        return retrying(write)

    def _finish_by_id(
        self,
        run_id: int,
        status: RunStatus,
        counters: dict[str, Any],
        error: BaseException | str | None,
        error_type: str | None = None,
    ) -> RunRecord:
        values: dict[str, Any] = {"finished_at": naive(self.clock.now())}
        if counters:
            values["counters"] = counters
        values.update(_error_fields(error, error_type))
        if not self.store.transition(run_id, status, ALLOWED_FROM[status], values):
            raise InvalidTransition(run_id, self.get_run(run_id).status, status)
        self.events.finished(run_id)
        return self.get_run(run_id)

    def _save_checkpoint(self, run: Run, value: Any) -> None:
        if not self.store.save_checkpoint(run.id, run.uid, value):
            current = self.store.get_run(run.id)
            run._lose_lease(current.status if current else None)
            run._check()

    def _flush_items(self, run: Run) -> None:
        self._flush_items_of([run])
        run._check()  # the run was found reaped: its code stops here

    def _flush_items_of(self, runs: Sequence[Run]) -> None:
        """Write buffered items, fenced: the items of a run that is no longer
        ours are dropped and its handle raises ``LeaseLost`` from then on."""
        with self._items_lock:
            taken = [(run, run._take_items()) for run in runs]
            owners = {run.id: run.uid for run, batch in taken if batch}
            rows = self._stamp_items([row for _, batch in taken for row in batch])
            try:
                lost = self.store.insert_items_fenced(rows, owners)
            except Exception:
                for run, batch in taken:  # nothing buffered is lost: try again later
                    run._restore_items(batch)
                raise
        for run, _ in taken:
            if run.id in lost:
                self._heartbeat.unregister(run)
                run._lose_lease(lost[run.id])

    def _stamp_items(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if rows:
            now = naive(self.clock.now())
            for row in rows:
                row.setdefault("recorded_at", now)
        return rows

    # -- queries -------------------------------------------------------------

    def get_run(self, run_id: int) -> RunRecord:
        """The run with this id, or :class:`RunNotFound`."""
        inputs.positive_int("run_id", run_id)
        record = self.store.get_run(run_id)
        if record is None:
            raise RunNotFound(run_id)
        return record

    def list_runs(
        self,
        *,
        job: str | None = None,
        provider: str | None = None,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        triggered_by: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RunRecord]:
        """Runs newest first, one page at a time (keyset pagination:
        pass ``next_cursor`` back as ``cursor``)."""
        filters = self.run_filter(
            job=job,
            provider=provider,
            status=status,
            triggered_by=triggered_by,
            since=since,
            until=until,
        )
        inputs.positive_int("limit", limit, limit=MAX_PAGE)
        before = decode_cursor(cursor)
        rows = self.store.list_runs(filters, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor(rows[-1].id) if more else None)

    def run_filter(
        self,
        *,
        job: str | None = None,
        provider: str | None = None,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        triggered_by: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> RunFilter:
        """Validate listing filters (shared by the listing and the counts)."""
        statuses: tuple[RunStatus, ...] = ()
        if status is not None:
            raw = [status] if isinstance(status, str) else list(status)
            statuses = inputs.choices("status", raw, RunStatus)
        return RunFilter(
            job=inputs.key("job", job, optional=True),
            provider=inputs.key("provider", provider, optional=True),
            statuses=statuses,
            triggered_by=inputs.key("triggered_by", triggered_by, optional=True),
            since=inputs.timestamp("since", since),
            until=inputs.timestamp("until", until),
        )

    def count_runs(self, **filters: Any) -> int:
        """How many runs match the filters of :meth:`list_runs`."""
        return self.store.count_runs(self.run_filter(**filters))

    def recent_runs(self, limit: int = 10) -> list[RunRecord]:
        return self.list_runs(limit=limit).items

    def last_successful_run(self, job: str) -> RunRecord | None:
        """The job's latest run that ended ``success`` (``None`` if none did)."""
        state = self.store.get_job(inputs.key("job", job))
        if state is None or state.last_success_run_id is None:
            return None
        return self.store.get_run(state.last_success_run_id)

    def active_runs(self, job: str | None = None) -> list[RunRecord]:
        return self.store.active_runs(inputs.key("job", job, optional=True))

    def recent_runs_of_jobs(
        self, jobs: Sequence[str], *, limit: int = 30
    ) -> dict[str, list[RunBrief]]:
        """Each job's last ``limit`` runs in outline, newest first (status
        strips, charts). The cost follows ``len(jobs) * limit``, not the table."""
        keys = [inputs.key("jobs", job) for job in jobs]
        inputs.positive_int("limit", limit, limit=MAX_PAGE)
        return self.store.recent_runs_of_jobs(keys, limit)

    def count_stale(self) -> int:
        """Active runs silent for longer than ``stale_after``: what :meth:`reap`
        would finalize as ``heartbeat_timeout`` now."""
        return self.store.count_stale(self.clock.now() - self.stale_after)

    def count_started(self, status: RunStatus | str, *, since: datetime) -> int:
        """How many runs that started at or after ``since`` are now in
        ``status`` (e.g. failed in the last day); an index range, whatever
        the size of the history."""
        target = inputs.choice("status", status, RunStatus)
        cutoff = inputs.timestamp("since", since, optional=False)
        assert cutoff is not None
        return self.store.count_started(target, cutoff)

    def list_runs_by_page(
        self, page: int, *, limit: int = 50, **filters: Any
    ) -> NumberedPage[RunRecord]:
        """Page ``page`` (from 1) of the runs :meth:`list_runs` lists, with the
        total. An OFFSET costs more the deeper the page; the cursor does not."""
        run_filter = self.run_filter(**filters)
        inputs.positive_int("page", page, limit=1_000_000)
        inputs.positive_int("limit", limit, limit=MAX_PAGE)
        rows = self.store.list_runs(run_filter, limit, None, offset=(page - 1) * limit)
        return NumberedPage(rows, page, limit, self.store.count_runs(run_filter))

    def job_states(self, provider: str | None = None) -> list[JobState]:
        """Every job (of ``provider``) with its active run count and the pause
        of its provider, ordered by key."""
        provider = inputs.key("provider", provider, optional=True)
        return self._overview.job_states(self.clock.now(), provider)

    def job_state(self, job: str) -> JobState:
        """One job's state; :class:`JobNotFound` if no run ever named it."""
        return self._overview.job_state(self.clock.now(), inputs.key("job", job))

    def providers(self) -> list[ProviderState]:
        """Providers named by a job or by a pause in force, with their pause."""
        return self._overview.providers(self.clock.now())

    def job_tallies(self) -> list[JobTally]:
        """Per job and terminal status: runs, items and durations, added up at
        each finalization (retention does not lower them)."""
        return self._overview.tallies()

    def health(self) -> Health:
        """Whether the database answers and stale runs are being reaped."""
        return self._overview.health(self.clock.now)

    def list_items(
        self,
        run_id: int,
        *,
        status: str | None = None,
        group: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[ItemRecord]:
        """A run's items in the order they were recorded, one page at a time."""
        inputs.positive_int("run_id", run_id)
        item_status = inputs.choice("status", status, ItemStatus).value if status else None
        inputs.positive_int("limit", limit, limit=MAX_PAGE)
        after = decode_cursor(cursor)
        rows = self.store.list_items(
            run_id, item_status, inputs.key("group", group, optional=True), limit + 1, after
        )
        if not rows and self.store.get_run(run_id) is None:
            raise RunNotFound(run_id)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor(rows[-1].id) if more else None)

    def group_summary(self, run_id: int) -> list[GroupSummary]:
        """Per group of a run's items (``run.item(..., group=...)``): counts by
        status and the sources with a success, ordered by group."""
        inputs.positive_int("run_id", run_id)
        summaries: dict[str, tuple[dict[str, int], list[str]]] = {}
        for group, source, status, n in self.store.item_group_counts(run_id):
            counts, found_in = summaries.setdefault(group, ({}, []))
            counts[status] = counts.get(status, 0) + n
            if status == ItemStatus.SUCCESS and source is not None:
                found_in.append(source)
        return [GroupSummary(g, c, tuple(f)) for g, (c, f) in summaries.items()]

    def get_job(self, job: str) -> JobRecord | None:
        return self.store.get_job(inputs.key("job", job))

    def jobs(self, provider: str | None = None) -> list[JobRecord]:
        return self.store.list_jobs(inputs.key("provider", provider, optional=True))

    def watermark(self, job: str) -> datetime | None:
        """Where the job's next run's window starts."""
        state = self.get_job(job)
        return state.watermark if state else None

    def get_jobs(self, jobs: Sequence[str]) -> dict[str, JobRecord]:
        """The jobs with these keys, by key (unknown keys are left out)."""
        keys = [inputs.key("job", job) for job in jobs]
        return {record.key: record for record in self.store.get_jobs(keys)} if keys else {}

    def ensure_job(self, job: str, *, provider: str | None = None) -> None:
        """Create the job's row unless it exists (a job is otherwise created by
        its first run); the runner does this for every job it schedules."""
        inputs.key("job", job)
        inputs.key("provider", provider, optional=True)
        self.store.ensure_job(job, provider, self.clock.now())
        self._known_jobs.add(job)

    def claim_tick(self, job: str, *, due: datetime | None, next_due: datetime) -> bool:
        """Move the job's next due time from ``due`` (as last read; ``None``
        if never scheduled) to ``next_due``, if no one else did. True means this
        caller owns the tick ``due``: of many runners, exactly one gets True."""
        inputs.key("job", job)
        seen = inputs.timestamp("due", due)
        target = inputs.timestamp("next_due", next_due, optional=False)
        assert target is not None
        return self.store.claim_tick(job, seen, target)

    def claim_maintenance(self, task: str, every: timedelta | float | str) -> bool:
        """Whether the caller should run maintenance ``task`` now: True for one
        caller per ``every``, however many processes ask."""
        inputs.key("task", task, limit=64)
        now = self.clock.now()
        return self.store.claim_maintenance(task, now, now - inputs.duration("every", every))

    # -- control ---------------------------------------------------------------

    def cancel(self, run_id: int, *, by: str | None = None, reason: str | None = None) -> RunRecord:
        """Cancel a pending run now, or ask a running one to stop (its code
        gets ``RunCancelled`` within one heartbeat interval)."""
        inputs.positive_int("run_id", run_id)
        inputs.key("by", by, optional=True)
        inputs.text("reason", reason, optional=True)
        now = self.clock.now()
        values = {
            "finished_at": naive(now),
            "cancel_requested_at": naive(now),
            "cancel_requested_by": by,
            "cancel_reason": reason,
            "error_type": "cancelled",
            "error_message": reason,
        }
        if self.store.transition(run_id, RunStatus.CANCELLED, {RunStatus.PENDING}, values):
            self.events.finished(run_id)
            record = self.get_run(run_id)
            log.info("run %s cancelled before it started", run_id, extra=run_fields(record))
            return record
        if not self.store.request_cancel(run_id, now, by, reason):
            record = self.get_run(run_id)
            if record.status is not RunStatus.RUNNING:
                raise RunNotCancellable(run_id, record.status)
        local = self._heartbeat.get(run_id)
        if local is not None:  # same process: no need to wait for a heartbeat
            local._request_stop(reason)
        record = self.get_run(run_id)
        log.info("run %s asked to stop (by %s)", run_id, by, extra=run_fields(record))
        return record

    def reap(self, stale_after: timedelta | float | None = None) -> list[int]:
        """Finalize stale runs (``failed``/``heartbeat_timeout``) and runs stuck
        after a cancel (``cancelled``); returns the ids finalized by this call."""
        threshold = inputs.duration("stale_after", stale_after) if stale_after else None
        reaped = self._reaper.reap(self.clock.now(), threshold)
        for run_id in reaped:
            self.events.finished(run_id)
        return reaped

    def prune(
        self,
        older_than: timedelta | float | str | datetime,
        *,
        items_only: bool = False,
        batch_size: int = 1000,
        dry_run: bool = False,
        progress: Callable[[PruneResult], None] | None = None,
    ) -> PruneResult:
        """Delete terminal runs finished before the cutoff (a datetime, or an
        age like ``"90d"``), keeping each job's latest run and latest
        successful run and all job state."""
        now = self.clock.now()
        if isinstance(older_than, datetime):
            cutoff = inputs.timestamp("older_than", older_than, optional=False)
            assert cutoff is not None
            if cutoff > now:
                raise InvalidInput(
                    "older_than",
                    f"{cutoff.isoformat()} is in the future (now is {now.isoformat()})",
                    "a past datetime, or a positive age like 90d",
                )
        else:
            cutoff = now - inputs.duration("older_than", older_than)
        inputs.positive_int("batch_size", batch_size, limit=100_000)
        inputs.flag("items_only", items_only)
        inputs.flag("dry_run", dry_run)
        result = prune(
            self.store,
            cutoff,
            items_only=items_only,
            batch_size=batch_size,
            dry_run=dry_run,
            progress=progress,
        )
        if not dry_run:
            details = {"runs": result.runs, "items": result.items, "cutoff": cutoff.isoformat()}
            self.store.mark_maintenance("prune", self.clock.now(), details)
        return result

    def pause(
        self,
        provider: str,
        *,
        until: datetime | None = None,
        for_: timedelta | float | str | None = None,
        reason: str,
        by: str | None = None,
    ) -> PauseRecord:
        """Pause a provider: the runner skips its jobs until the pause ends."""
        return self._pauses.pause(
            provider, self.clock.now(), until=until, for_=for_, reason=reason, by=by
        )

    def resume(self, provider: str) -> bool:
        """End a provider's pause; returns whether one was active."""
        return self._pauses.resume(provider)

    def paused(self, provider: str) -> PauseRecord | None:
        return self._pauses.paused(provider, self.clock.now())

    def pauses(self) -> list[PauseRecord]:
        return self._pauses.active(self.clock.now())

    def last_maintenance(self, task: str) -> tuple[datetime, dict[str, Any]] | None:
        """When ``reap`` or ``prune`` last ran, and what it did."""
        return self.store.last_maintenance(task)

    def heartbeat_now(self) -> None:
        """Run one heartbeat tick now (tests and shutdown paths)."""
        self._heartbeat.tick()


class _Started:
    __slots__ = ("now", "started", "values", "window_end")

    def __init__(
        self, started: Any, values: dict[str, Any], now: datetime, window_end: datetime
    ) -> None:
        self.started, self.values, self.now, self.window_end = started, values, now, window_end


_START_OPTIONS = {
    "job",
    "provider",
    "params",
    "triggered_by",
    "concurrency",
    "window_start",
    "window_end",
    "advance_watermark",
    "attempt",
    "retry_of",
    "retry_policy",
}


def _error_fields(error: BaseException | str | None, error_type: str | None) -> dict[str, Any]:
    if error is None:
        return {"error_type": error_type} if error_type else {}
    if isinstance(error, str):
        return {"error_type": error_type or "error", "error_message": error}
    name = type(error).__qualname__
    module = type(error).__module__
    return {
        "error_type": error_type or (name if module == "builtins" else f"{module}.{name}"),
        "error_message": str(error),
        "error_stack": "".join(traceback.format_exception(error)),
    }


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id inside an opaque cursor; a cursor we did not make is InvalidInput."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "v1":
            raise ValueError(prefix)
        result = int(value)
        if result < 1:
            raise ValueError(value)
        return result
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor() from None
