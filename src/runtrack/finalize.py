"""Finalizing runs and writing their items.

A run is finalized once, with its buffered items, by a guarded update
retried for a bounded time while the database is away; items are written in
batches in between (by the run's own thread when a buffer fills, by the
heartbeat thread every interval), fenced by the run's lease.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from runtrack.clock import Clock
from runtrack.errors import DatabaseUnavailable, InvalidTransition, LeaseLost
from runtrack.events import Events
from runtrack.failures import Failure, bare_end, failure_of, type_name, without_items
from runtrack.health import ended_by_timeout
from runtrack.heartbeat import Heartbeat
from runtrack.models import ALLOWED_FROM, GOOD, RATE_LIMITED, OnPartial, RunRecord, RunStatus
from runtrack.queries import Queries
from runtrack.run import (
    Run,
    carry_if_any,
    carry_of,
    delivered_cancel,
    end_recording,
    ending_of,
    items_of,
    lose_lease,
)
from runtrack.store.liveness import LivenessStore
from runtrack.store.rows import naive
from runtrack.store.runs import RunStore
from runtrack.store.sql import JobEffect
from runtrack.store.values import NewItem, RunEnd
from runtrack.volume import VolumeGuard, guard_final

__all__ = ["Finalizer"]

log = logging.getLogger("runtrack")


class Finalizer:
    """Ends runs (by handle or by id) and writes their items; the part of
    :class:`~runtrack.lifecycle.Lifecycle` that ``RunContext`` and
    ``Ledger.finish_run`` call at the end of a run."""

    def __init__(
        self,
        runs: RunStore,
        liveness: LivenessStore,
        clock: Clock,
        events: Events,
        queries: Queries,
        heartbeat_interval: float,
        finalize_timeout: float,
    ) -> None:
        self.runs = runs
        self.liveness = liveness
        self.clock = clock
        self.events = events
        self.queries = queries
        self.finalize_timeout = finalize_timeout
        self.heartbeat = Heartbeat(liveness, clock, heartbeat_interval, self.flush_items_of)
        # One item flush at a time: rows reach run_items in the order they
        # were recorded, and finalization waits for a flush in flight.
        self.items_lock = threading.Lock()
        #: The ledger, whose alerting part guards the volume of good runs
        #: (set by :class:`~runtrack.ledger.Ledger`; ``None``: no guard).
        self.alerts: Any = None
        self._guard: VolumeGuard | None = None

    def finalize(
        self,
        run: Run,
        status: RunStatus,
        error: BaseException | str | None = None,
        error_type: str | None = None,
        error_details: dict[str, Any] | None = None,
    ) -> None:
        """Flush and finalize once. Raises LeaseLost if the run was taken away.

        A run whose code was told of a cancel ends ``cancelled`` whatever the
        code did with it (a bare ``except:`` that carried on did not finish
        the work, so the watermark must not move)."""
        cancel = delivered_cancel(run)
        if cancel is not None and status is not RunStatus.CANCELLED:
            status, error, error_type = RunStatus.CANCELLED, cancel.reason, cancel.error_type
        if status is RunStatus.CANCELLED:
            status = ended_by_timeout(status, cancel, error_type)  # a timeout fails the run
        self.heartbeat.unregister(run)
        failure, escaped = _failure(error, error_type)
        try:
            self._finalize(run, status, failure, error_details)
        finally:
            if escaped is not None:  # the run ended failed: now the interrupt goes on
                raise escaped

    def _finalize(
        self,
        run: Run,
        status: RunStatus,
        failure: Failure,
        error_details: dict[str, Any] | None,
    ) -> None:
        with self.items_lock:  # a heartbeat flush of this run's items ends first
            end, items = end_recording(run, self.clock.now)
        end.failed_with(failure.type, failure.message, failure.stack)
        if status is RunStatus.FAILED and ending_of(run) == RATE_LIMITED:
            end.error_type = RATE_LIMITED  # the runner paused its provider
        if error_details:
            end.add_details(**error_details)
        volume = None
        guard = self.volume_guard() if status in GOOD else None
        if guard is not None and (run.volume_history is not None or guard.may_guard(run.job)):
            status, verdict = guard_final(guard, run, status, end)
            if verdict is not None:  # written with the job row (JobEffect.volume)
                volume = verdict.recorded(run.id, run.counters)
        attempts = 0
        bare = False

        def write() -> bool | None:
            nonlocal attempts
            attempts += 1
            return self._write_final(run, status, end, items, bare=bare, volume=volume)

        try:
            changed = self._with_finalize_retries(write)
        except (DatabaseUnavailable, LeaseLost):
            raise  # the database is away (the run will be reaped), or not ours
        except Exception as exc:
            # Something of the run no database takes (e.g. a field of the handle
            # its code replaced): end it failed with what can be written.
            log.exception("run %s: its final values could not be written", run.id)
            status, end, bare = RunStatus.FAILED, bare_end(end, exc), True
            try:  # with its buffered items: they were checked when recorded
                changed = self._with_finalize_retries(write)
            except (DatabaseUnavailable, LeaseLost):
                raise
            except Exception:
                log.exception("run %s: its last items could not be written", run.id)
                end, items = without_items(end, items), []  # tallies agree
                changed = self._with_finalize_retries(write)
        current = None if changed else self.runs.get_run(run.id)
        # After a failed attempt the stored end may be ours with only its answer
        # lost (``None``: the store retried one); without one, equal values are
        # another finisher's at the same clock reading, and this call lost.
        ours = (status, end.finished_at)
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
        self,
        run: Run,
        status: RunStatus,
        end: RunEnd,
        items: list[NewItem],
        *,
        bare: bool = False,
        volume: tuple[Any, Any] | None = None,
    ) -> bool | None:
        carry = carry_if_any(run)  # None: default policy, nothing owed, no slice
        errors = end.items["error"] if end.items else 0
        if carry is None and errors:
            carry = carry_of(run)  # failed items are owed under the default policy
        settles = None
        if carry is not None:
            settles = carry.request(run.id, run.job, status, errors)
        effect = (
            # A final write refused on a value: no watermark, no checkpoint,
            # but what the job owes is still settled as for any failed run.
            JobEffect(run.job, None, False, None, carry=settles)
            if bare
            else JobEffect(
                run.job,
                naive(run.window.end),
                run.moves_watermark,
                run.checkpoint,
                naive(run.started_at),
                hold=carry is not None and carry.policy is OnPartial.HOLD,
                carry=settles,
                volume=volume,
            )
        )
        # Fenced, with the last items in the same transaction: a run reaped
        # meanwhile gets neither its final values nor these items.
        return self.liveness.finalize_run(run.id, run.uid, status, end, effect, items)

    def guards(self, job: str) -> bool:
        """Whether ``job``'s volume is guarded: its run's start reads the
        history (a cheap check for the others, no query)."""
        guard = self.volume_guard()
        return guard is not None and guard.guards(job)

    def volume_guard(self) -> VolumeGuard | None:
        """The ledger's volume guard (made with its alerting part on first use)."""
        if self._guard is None and self.alerts is not None:
            self._guard = self.alerts.alerting.volume
        return self._guard

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

    def finish_by_id(
        self,
        run_id: int,
        status: RunStatus,
        counters: dict[str, Any],
        error: BaseException | str | None,
        error_type: str | None = None,
        error_details: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Finalize a run this process holds no handle of (a pending run, or
        one started elsewhere)."""
        end = RunEnd(self.clock.now(), counters=counters or None, error_details=error_details)
        failure = failure_of(error, error_type)
        end.failed_with(failure.type, failure.message, failure.stack)
        if not self.runs.transition(run_id, status, ALLOWED_FROM[status], end):
            raise InvalidTransition(run_id, self.queries.get_run(run_id).status, status)
        self.events.finished(run_id)
        return self.queries.get_run(run_id)

    def flush_items_of(self, runs: Sequence[Run]) -> None:
        """Write buffered items, fenced: the items of a run that is no longer
        ours are dropped and its handle raises ``LeaseLost`` from then on."""
        with self.items_lock:
            taken = [(run, items_of(run).take()) for run in runs]
            owners = {run.id: run.uid for run, batch in taken if batch}
            rows = [row for _, batch in taken for row in batch]
            try:
                lost = self.liveness.insert_items_fenced(rows, owners, self.clock.now())
            except Exception:
                for run, batch in taken:  # nothing buffered is lost: try again later
                    items_of(run).restore(batch)
                raise
        for run, _ in taken:
            if run.id in lost:
                self.heartbeat.unregister(run)
                lose_lease(run, lost[run.id])


def _failure(
    error: BaseException | str | None, error_type: str | None
) -> tuple[Failure, BaseException | None]:
    """What the run records of ``error``, and what describing it raised if
    that was a BaseException (a ``__str__`` raising SystemExit, a Ctrl-C
    during a slow one): the run must still end, then that exception goes on."""
    try:
        return failure_of(error, error_type), None
    except BaseException as escaped:  # failure_of itself catches every Exception
        assert isinstance(error, BaseException)
        text = f"<{type(error).__name__}: describing it raised {type(escaped).__name__}>"
        return failure_of(text, error_type or type_name(error)), escaped
