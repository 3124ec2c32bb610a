"""Starting and finalizing runs: the machinery behind ``ledger.run()``.

A run is inserted holding its job's lease, handed to the heartbeat thread,
and finalized once, with its buffered items, by a guarded update retried for
a bounded time while the database is away.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from datetime import datetime
from typing import Any

from runtrack.carry import RunCarry
from runtrack.clock import Clock
from runtrack.errors import (
    BackfillBusy,
    InvalidInput,
    InvalidTransition,
    JobBusy,
    ProviderBusy,
    RunFinished,
)
from runtrack.events import Events
from runtrack.finalize import Finalizer
from runtrack.logs import run_fields
from runtrack.models import (
    DEFAULT_MAX_CARRY_ATTEMPTS,
    Carried,
    OnPartial,
    RunStatus,
    Window,
)
from runtrack.queries import Queries
from runtrack.reaper import Reaper
from runtrack.run import (
    Run,
    carry_of,
    lose_lease,
)
from runtrack.start import StartRequest
from runtrack.store.carry_handout import CarryStore
from runtrack.store.jobs import JobStore
from runtrack.store.liveness import LivenessStore
from runtrack.store.queue import QueueStore
from runtrack.store.rows import aware, naive
from runtrack.store.runs import RunStore
from runtrack.store.sql import (
    Claim,
    LeaseTaken,
    StartedRun,
    WindowBeforeWatermark,
)
from runtrack.store.values import NewRun

log = logging.getLogger("runtrack")
#: Seconds a process keeps its list of providers with a limit.
LIMITS_TTL = 5.0


class Lifecycle:
    """Inserting, starting and finalizing runs: the part of the
    :class:`~runtrack.ledger.Ledger` behind ``ledger.run()``, and the
    :class:`~runtrack.run.RunOwner` of every run it starts."""

    def __init__(
        self,
        runs: RunStore,
        liveness: LivenessStore,
        jobs: JobStore,
        queue: QueueStore,
        carry: CarryStore,
        clock: Clock,
        events: Events,
        reaper: Reaper,
        queries: Queries,
        *,
        heartbeat_interval: float,
        item_batch_size: int,
        finalize_timeout: float,
        host: str,
        worker_id: str,
    ) -> None:
        self.runs = runs
        self.jobs = jobs
        self.queue = queue
        self.carry = carry
        self.clock = clock
        self.events = events
        self.reaper = reaper
        self.queries = queries
        self.item_batch_size = item_batch_size
        self.finalize_timeout = finalize_timeout
        self.host = host
        #: Recorded on every run this process starts (a runner names its own).
        self.worker_id = worker_id
        #: Finalizes runs and writes their items (and runs the heartbeat thread).
        self.finalizer = Finalizer(
            runs, liveness, clock, events, queries, heartbeat_interval, finalize_timeout
        )
        self.heartbeat = self.finalizer.heartbeat
        # Issue 17: providers with a limit (their direct starts count them).
        self._limits: frozenset[str] = frozenset()
        self._limits_until = 0.0

    # -- starting ----------------------------------------------------------------

    def open(self, request: StartRequest) -> Run:
        """Insert a running run and hand it to the heartbeat thread."""
        if request.provider is not None and request.provider in self._limited():
            return self._open_limited(request)
        started = self.insert(request, RunStatus.RUNNING)
        run = None
        try:
            run = self._handle(started, request)
            self.events.started(run.id)
        except BaseException as exc:
            self._interrupted(started.started.id, run, exc)
            raise
        return run

    def _interrupted(self, run_id: int, run: Run | None, exc: BaseException) -> None:
        """A start interrupted after its run was written (a Ctrl-C, a listener
        raising a BaseException): end the run as its block would have, rather
        than leave it running and heartbeated for the rest of the process."""
        stopping = isinstance(exc, KeyboardInterrupt | SystemExit)
        status = RunStatus.CANCELLED if stopping else RunStatus.FAILED
        error_type = "shutdown" if stopping else None
        try:
            if run is None:
                self.finalizer.finish_by_id(run_id, status, {}, exc, error_type)
            else:
                self.finalizer.finalize(run, status, exc, error_type)
        except Exception:
            if run is not None:
                self.heartbeat.unregister(run)
            log.exception("could not end run %s after its start was interrupted", run_id)

    def insert(self, r: StartRequest, status: RunStatus) -> Started:
        """Insert a run in ``status``, holding one of its job's lease slots
        (a stale holder is reaped first)."""
        now = self.clock.now()
        job, provider = r.job, r.provider
        explicit = r.window_start is not None
        end, moves = self._window_end(r, now)
        if job not in self.queries.known_jobs:
            self.jobs.ensure_job(job, provider, now)
            self.queries.known_jobs.add(job)
        new = r.new_run(
            status,
            now,
            moves=moves,
            window_end=end,
            host=self.host,
            pid=os.getpid(),
            worker_id=self.worker_id,
        )
        slots = [f"{job}#{i}" for i in range(r.concurrency)]
        # A job whose volume is guarded reads its history with the start: the
        # finalization judges by it and writes the new one with the job row.
        history = self.finalizer.guards(job)
        insert = functools.partial(
            self._insert_run, new, slots, explicit, r.window_end is not None, history
        )
        try:
            started = insert()
        except LeaseTaken as taken:
            holders = [run_id for run_id, _ in taken.holders]
            reaped = self.reaper.reap_if_stale(holders, now)
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
        return Started(started, new, aware(started.window_end) or end, history)

    @staticmethod
    def _window_end(r: StartRequest, now: datetime) -> tuple[datetime, bool]:
        """The run's window end (default: now) and whether it moves the watermark."""
        end = r.window_end or now
        advance = r.advance_watermark
        moves = (r.window_start is None) if advance is None else advance
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
        self,
        new: NewRun,
        slots: list[str],
        explicit: bool,
        explicit_end: bool,
        history: bool,
    ) -> StartedRun:
        try:
            return self.runs.insert_run(
                new,
                slots,
                explicit_window=explicit,
                explicit_end=explicit_end,
                history=history,
                clock=self.clock.now,
            )
        except WindowBeforeWatermark as early:
            end = naive(new.window_end)
            assert end is not None  # a start always has one (now, by default)
            raise InvalidInput(
                "window_end",
                f"{end.isoformat()}Z is before the job's watermark "
                f"{early.watermark.isoformat()}Z, where this run's window starts",
                "a time at or after the watermark, or an explicit window_start (a backfill)",
            ) from None

    @staticmethod
    def _carry(request: StartRequest, owes: bool) -> RunCarry | None:
        return _run_carry(request.on_partial, request.max_carry_attempts, owes)

    def _handle(self, s: Started, request: StartRequest) -> Run:
        run = Run(
            self,
            id=s.started.id,
            uid=s.new.uid,
            job=request.job,
            provider=request.provider,
            attempt=request.attempt,
            params=request.params,
            window=Window(aware(s.started.window_start), s.window_end),
            previous_checkpoint=s.started.job_checkpoint,
            resume_checkpoint=s.started.resume_checkpoint,
            started_at=aware(s.started.started_at) or s.now,
            item_batch_size=self.item_batch_size,
            moves_watermark=s.new.moves_watermark,
            carry=self._carry(request, s.started.owes),
        )
        if s.history:
            run.volume_history = dict(s.started.volume_history or {})
        self.heartbeat.register(run)
        if log.isEnabledFor(logging.DEBUG):  # skip building the fields on the hot path
            log.debug("run %s of %s started", run.id, run.job, extra=run_fields(run))
        return run

    def start_pending(self, run_id: int, concurrency: int = 1) -> Run:
        """Claim the pending run ``run_id`` (one of ``concurrency`` lease slots
        of its job; a stale holder is reaped first; a backfill's window only
        within its ``max_parallel``) and return its handle."""
        clock = self.clock.now
        claim = self.queue.claim_run(run_id, concurrency, self.stamp(), clock)
        if claim.why == "busy" and self.reaper.reap_if_stale(list(claim.holders), clock()):
            claim = self.queue.claim_run(run_id, concurrency, self.stamp(), clock)
        if claim.run is None:
            if claim.why == "busy":
                record = self.queries.get_run(run_id)
                raise JobBusy(record.job, list(claim.holders), concurrency)
            if claim.why == "provider_limit":
                provider = self.queries.get_run(run_id).provider
                raise ProviderBusy(provider or "", claim.limit)
            if claim.why == "backfill_full":
                raise BackfillBusy(run_id, self.queries.get_run(run_id).backfill_id or 0)
            status = claim.status or self.queries.get_run(run_id).status
            raise InvalidTransition(run_id, status, RunStatus.RUNNING)
        return self.adopt(claim)

    def _limited(self) -> frozenset[str]:
        """The providers with a limit, read again every ``LIMITS_TTL`` seconds
        (a limit set elsewhere reaches this process's direct starts then)."""
        now = time.monotonic()
        if now >= self._limits_until:
            self._limits = frozenset(self.queue.provider_limits())
            self._limits_until = now + LIMITS_TTL
        return self._limits

    def _open_limited(self, r: StartRequest) -> Run:
        """A direct start of a job whose provider has a limit: inserted and
        claimed in one transaction that counts the provider's running runs
        (:class:`ProviderBusy` at the limit, :class:`JobBusy` without a slot)."""
        now = self.clock.now()
        self._window_end(r, now)  # its checks
        if r.job not in self.queries.known_jobs:
            self.jobs.ensure_job(r.job, r.provider, now)
            self.queries.known_jobs.add(r.job)
        fixed = r.window_start is not None
        moves = (not fixed) if r.advance_watermark is None else r.advance_watermark
        new = r.new_run(RunStatus.PENDING, now, moves=moves, window_end=r.window_end)
        slots = [f"{r.job}#{i}" for i in range(r.concurrency)]
        claim = self.queue.start_now(new, slots, self.stamp(), self.clock.now)
        if claim.why == "provider_limit":
            raise ProviderBusy(r.provider or "", claim.limit)
        if claim.run is None:
            raise JobBusy(r.job, list(claim.holders), r.concurrency)
        return self.adopt(claim)

    def stamp(self) -> dict[str, Any]:
        """Who runs a claimed run: this process."""
        return {"host": self.host, "pid": os.getpid(), "worker_id": self.worker_id}

    def adopt(self, claim: Claim) -> Run:
        """The handle of a run this process just claimed, heartbeating."""
        record = claim.run
        assert record is not None
        run = Run(
            self,
            id=record.id,
            uid=record.uid,
            job=record.job,
            provider=record.provider,
            attempt=record.attempt,
            params=record.params,
            window=Window(record.window_start, record.window_end),
            previous_checkpoint=claim.job_checkpoint,
            resume_checkpoint=record.checkpoint,
            started_at=record.started_at,
            item_batch_size=self.item_batch_size,
            moves_watermark=record.moves_watermark,
            carry=_run_carry(record.on_partial, record.max_carry_attempts, claim.owes),
        )
        self.heartbeat.register(run)
        try:
            self.events.started(record.id)
        except BaseException as exc:
            self._interrupted(record.id, run, exc)
            raise
        return run

    # -- the RunOwner of every run it starts (see runtrack.run) -------------------

    def save_checkpoint(self, run: Run, value: Any) -> None:
        if not self.runs.save_checkpoint(run.id, run.uid, value):
            current = self.runs.get_run(run.id)
            lose_lease(run, current.status if current else None)
            run.check_cancelled()

    def flush_items(self, run: Run) -> None:
        self.finalizer.flush_items_of([run])
        # The run was found reaped: its code stops here. One that ended since
        # has its items already (buffered before the end took them): no error.
        with contextlib.suppress(RunFinished):
            run.check_cancelled()

    def wake_flusher(self) -> None:
        self.heartbeat.wake()

    def owed(self, run: Run) -> Carried:
        return carry_of(run).handed(self.carry, run.job, run.id)


class Started:
    """A run just inserted: the store's answer, the run as it was inserted
    (its ``created_at``: the clock reading of the start) and its window end."""

    __slots__ = ("history", "new", "started", "window_end")

    def __init__(
        self, started: Any, new: NewRun, window_end: datetime, history: bool = False
    ) -> None:
        self.started, self.new, self.window_end = started, new, window_end
        #: Whether the start read the job's volume history (a guarded job).
        self.history = history

    @property
    def now(self) -> datetime:
        return self.new.created_at


def _run_carry(policy: OnPartial | str, attempts: int, owes: bool) -> RunCarry | None:
    """A run's carry; ``None`` (the handle makes one if asked) for a job that
    owes nothing under the default policy, started or claimed: the common
    run, whose final write then takes the hot path (no carry to settle)."""
    default = OnPartial(policy) is OnPartial.CARRY
    if default and not owes and attempts == DEFAULT_MAX_CARRY_ATTEMPTS:
        return None
    return RunCarry(policy, attempts, owes)
