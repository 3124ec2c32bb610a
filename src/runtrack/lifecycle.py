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
import traceback
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from runtrack import inputs
from runtrack.errors import (
    DatabaseUnavailable,
    InvalidInput,
    InvalidTransition,
    JobBusy,
    LeaseLost,
)
from runtrack.logs import run_fields
from runtrack.models import (
    ALLOWED_FROM,
    RunRecord,
    RunStatus,
    Window,
)
from runtrack.queries import LedgerQueries
from runtrack.run import Run
from runtrack.store.rows import aware, naive
from runtrack.store.sql import (
    JobEffect,
    LeaseTaken,
    StartedRun,
    WindowBeforeWatermark,
)

log = logging.getLogger("runtrack")


class RunLifecycle(LedgerQueries):
    """Inserting, starting and finalizing runs (internal to the Ledger)."""

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
        # One object for every stamp of "now": the binder converts it once.
        at = naive(now)
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
            "created_at": at,
            "counters": {},
            "progress_done": 0,
            "window_end": at if end is now else naive(end),
            "window_start": naive(inputs.timestamp("window_start", r.get("window_start"))),
            "moves_watermark": moves,
            "retry_policy": r.get("retry_policy"),
            "items_success": 0,
            "items_not_found": 0,
            "items_skipped": 0,
            "items_error": 0,
        }
        if status is RunStatus.RUNNING:
            values.update(started_at=at, heartbeat_at=at)
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
        "error_type": error_type or (name if module == "builtins" else f"{module}.{name}")[:255],
        "error_message": _storable(str(error))[:MAX_MESSAGE],
        "error_stack": _storable("".join(traceback.format_exception(error))),
    }


#: An exception's message is kept to this many characters (MySQL's TEXT holds 64 KB).
MAX_MESSAGE = 10_000


def _storable(text: str) -> str:
    """Text the job's code produced, as every database can store it: NUL and
    lone surrogates escaped. A failure must be recorded whatever it says."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
