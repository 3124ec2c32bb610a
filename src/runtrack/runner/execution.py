"""One attempt of one job: run it, watch it, stop it when it must stop.

The job runs in a worker thread and the runner's main thread supervises it.
The other way round cannot keep the promises of a timeout and of a graceful
shutdown: Python delivers signals to the main thread only, and only between
bytecodes, so a job blocked in a long network call in the main thread would
leave no one to notice its timeout or to bound the shutdown. With the job in
a thread, the main thread stays free to handle SIGTERM/SIGINT, to ask the run
to stop (``RunCancelled`` at its next interaction with the handle) and, if
the job does not react within ``STOP_WAIT`` seconds (or, after an operator's
cancel, within the ledger's cancel grace), to finalize the run itself
(``cancelled``) and move on. A thread cannot be killed: an abandoned
job keeps running until its next interaction with the handle raises, or until
the process exits (the thread is a daemon). The job thread is kept from one
run to the next (:class:`~runtrack.runner.threads.JobThread`), except the one
an abandoned job is stuck in.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType

from runtrack.errors import InvalidTransition, JobBusy, LeaseLost, ProviderBusy
from runtrack.ledger import Ledger
from runtrack.models import RATE_LIMITED, TIMEOUT, RunStatus
from runtrack.run import Run, mark_ending, request_stop
from runtrack.runner.registry import JobSpec
from runtrack.runner.retry import Action, Decision
from runtrack.runner.threads import JobThread

__all__ = ["Attempt", "Execution", "Outcome", "Stopper", "stop_on_signals"]

log = logging.getLogger("runtrack.runner")

POLL = 0.05  # seconds between the supervisor's checks
STOP_WAIT = 0.5  # seconds a job gets to react to a stop request before it is cut off


class Stopper:
    """The runner's stop request. Set from a signal handler, so it only
    assigns attributes (taking a lock there could deadlock the main thread)."""

    def __init__(self) -> None:
        self.requested_at: float | None = None  # time.monotonic()
        self.immediate = False

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def request(self, *, immediate: bool = False) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()
        self.immediate = self.immediate or immediate

    def reset(self) -> None:
        self.requested_at = None
        self.immediate = False

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` or until a stop is requested."""
        end = time.monotonic() + seconds
        while not self.requested and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, POLL * 2))


@contextmanager
def stop_on_signals(stopper: Stopper, enabled: bool) -> Iterator[None]:
    """SIGTERM and SIGINT request a stop while the runner runs (only the
    main thread may set signal handlers); a second signal means "now": it
    skips the rest of the grace period."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopper.request(immediate=stopper.requested)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt to run a job: a schedule tick (attempt 1), a run claimed
    from the queue (``queued``, issue 17) or a retry of either. The retry of
    a queued run is not run here: once due, it is queued again (``requeue``)
    with the failed run's params and window, and claimed like any."""

    spec: JobSpec
    due: datetime  # when it became (or becomes) runnable
    tick: datetime | None  # the schedule tick of the first attempt (None: queued)
    attempt: int = 1
    retry_of: int | None = None
    used: int = 1  # attempts counted against the retry budget, this one included
    #: A run claimed from the queue, already running (its handle).
    queued: Run | None = None
    #: The failed queued run that this retry queues again when due.
    requeue: int | None = None

    @property
    def triggered_by(self) -> str:
        return "schedule" if self.retry_of is None else "retry"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended. ``run_id`` is ``None`` if no run started."""

    run_id: int | None
    status: RunStatus | None
    error: BaseException | None = None
    busy: bool = False
    #: The retry decision taken before the run was finalized (issue 18).
    decision: Decision | None = None


class Execution:
    """Runs one attempt in a job thread (``hands``) under the supervision of
    the caller."""

    def __init__(
        self, ledger: Ledger, attempt: Attempt, stopper: Stopper, grace: float, hands: JobThread
    ) -> None:
        self._ledger = ledger
        self._attempt = attempt
        self._stopper = stopper
        self._grace = grace
        self._hands = hands
        self._run: Run | None = None
        self._error: BaseException | None = None
        self._busy = False
        self._decision: Decision | None = None

    def __call__(self) -> Outcome:
        """Run the attempt and return once the run is final."""
        done = self._hands.start(self._work, f"runtrack-job:{self._attempt.spec.key}")
        self._supervise(done)
        return self._outcome()

    # -- the worker thread ------------------------------------------------------

    def _work(self) -> None:
        a, spec = self._attempt, self._attempt.spec
        try:
            block = (
                self._ledger.claimed(a.queued)
                if a.queued is not None
                else self._ledger.run(
                    spec.key,
                    provider=spec.provider,
                    triggered_by=a.triggered_by,
                    concurrency=spec.concurrency,
                    attempt=a.attempt,
                    retry_of=a.retry_of,
                    retry_policy=spec.retry.as_dict(),
                    on_partial=spec.on_partial,
                    max_carry_attempts=spec.max_carry_attempts,
                )
            )
            with block as run:
                if a.tick is not None:
                    run.scheduled_for = a.tick
                self._run = run
                try:
                    result = spec.fn(run)
                    if inspect.iscoroutine(result):
                        asyncio.run(result)
                except Exception as exc:
                    self._decide(run, exc)
                    raise
        except (JobBusy, ProviderBusy) as busy:  # the job, or its provider, is at its limit
            self._busy, self._error = True, busy
        except BaseException as exc:  # the run block already recorded it
            self._error = exc

    def _decide(self, run: Run, error: Exception) -> None:
        """What follows the failure, decided before the run is finalized so
        that it records it: a retried or rate-limited attempt is not a failure
        for good (issue 18: the streak counts ticks, not attempts)."""
        decision = self._attempt.spec.retry.decide(self._attempt.used, error)
        self._decision = decision
        if decision.action is Action.PAUSE:
            mark_ending(run, RATE_LIMITED, (self._ledger.now() + decision.delay).isoformat())
        elif decision.action is Action.RETRY and not self._stopper.requested:
            mark_ending(run, "retried")

    # -- the supervising thread -------------------------------------------------

    def _supervise(self, done: threading.Event) -> None:
        started = time.monotonic()
        deadline: tuple[float, str] | None = None  # when to cut the job off, and why
        while not done.wait(POLL):
            now = time.monotonic()
            if deadline is None:
                deadline = self._stop_if_needed(now - started, now)
            elif now >= deadline[0]:
                self._cut_off(deadline[1])
                return

    def _stop_if_needed(self, elapsed: float, now: float) -> tuple[float, str] | None:
        """Ask the run to stop if it must; the deadline for it to comply."""
        run = self._run
        if run is None:
            return None  # still starting: ask once the handle exists
        if run.cancel_requested:  # an operator's cancel, or the lease was lost
            return now + self._ledger.cancel_grace.total_seconds(), "cancel_timeout"
        why = self._stop_reason(elapsed)
        if why is None:
            return None
        log.warning("run %s of %s: %s; asking it to stop", run.id, run.job, self._reason(why))
        request_stop(run, self._reason(why), why)
        return now + STOP_WAIT, why

    def _stop_reason(self, elapsed: float) -> str | None:
        timeout = self._attempt.spec.timeout
        if timeout is not None and elapsed >= timeout.total_seconds():
            return "timeout"
        stop_at = self._stopper.requested_at
        if stop_at is not None and (
            self._stopper.immediate or time.monotonic() - stop_at >= self._grace
        ):
            return "shutdown"
        return None

    def _cut_off(self, why: str) -> None:
        """The job ignored the stop request: finalize its run from here."""
        run = self._run
        assert run is not None
        log.error(
            "run %s of %s did not stop when asked (%s); finalizing it as cancelled "
            "and abandoning its thread",
            run.id,
            run.job,
            why,
        )
        # If it ended on its own meanwhile, its status stands. A timeout ends
        # failed, a shutdown or an operator's cancel cancelled.
        status = RunStatus.FAILED if why == TIMEOUT else RunStatus.CANCELLED
        with contextlib.suppress(LeaseLost, InvalidTransition):
            self._ledger.finish_run(run, status, error=self._reason(why), error_type=why)

    def _reason(self, why: str) -> str:
        if why == "timeout":
            return f"timed out after {self._attempt.spec.timeout}"
        if why == "shutdown":
            return f"runner shutting down (grace {self._grace:g} s)"
        return "cancel requested, but the job did not stop within the cancel grace"

    def _outcome(self) -> Outcome:
        run = self._run
        if self._busy:
            return Outcome(None, None, self._error, busy=True)  # the error says why
        if run is None:
            return Outcome(None, None, self._error)
        if run.status is RunStatus.RUNNING:  # cut off: re-read what was recorded
            return Outcome(run.id, self._ledger.get_run(run.id).status, self._error)
        return Outcome(run.id, run.status, self._error, decision=self._decision)
