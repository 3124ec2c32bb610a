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
the process exits (the thread is a daemon).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from runtrack.errors import InvalidTransition, JobBusy, LeaseLost
from runtrack.ledger import Ledger
from runtrack.models import RunStatus
from runtrack.run import Run
from runtrack.runner.registry import JobSpec

__all__ = ["Attempt", "Execution", "Outcome", "Stopper"]

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


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt to run a job: a schedule tick (attempt 1) or a retry."""

    spec: JobSpec
    due: datetime  # when it became (or becomes) runnable
    tick: datetime  # the schedule tick of the first attempt
    attempt: int = 1
    retry_of: int | None = None
    used: int = 1  # attempts counted against the retry budget, this one included

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


class Execution:
    """Runs one attempt in a worker thread under the supervision of the caller."""

    def __init__(self, ledger: Ledger, attempt: Attempt, stopper: Stopper, grace: float) -> None:
        self._ledger = ledger
        self._attempt = attempt
        self._stopper = stopper
        self._grace = grace
        self._run: Run | None = None
        self._error: BaseException | None = None
        self._busy = False
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._work, name=f"runtrack-job:{attempt.spec.key}", daemon=True
        )

    def __call__(self) -> Outcome:
        """Run the attempt and return once the run is final."""
        self._thread.start()
        self._supervise()
        return self._outcome()

    # -- the worker thread ------------------------------------------------------

    def _work(self) -> None:
        a, spec = self._attempt, self._attempt.spec
        try:
            with self._ledger.run(
                spec.key,
                provider=spec.provider,
                triggered_by=a.triggered_by,
                concurrency=spec.concurrency,
                attempt=a.attempt,
                retry_of=a.retry_of,
                retry_policy=spec.retry.as_dict(),
            ) as run:
                run.scheduled_for = a.tick
                self._run = run
                result = spec.fn(run)
                if inspect.iscoroutine(result):
                    asyncio.run(result)
        except JobBusy:
            self._busy = True
        except BaseException as exc:  # the run block already recorded it
            self._error = exc
        finally:
            self._done.set()

    # -- the supervising thread -------------------------------------------------

    def _supervise(self) -> None:
        started = time.monotonic()
        deadline: tuple[float, str] | None = None  # when to cut the job off, and why
        while not self._done.wait(POLL):
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
        run._request_stop(self._reason(why), why)
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
        # If it ended on its own meanwhile, its status stands.
        with contextlib.suppress(LeaseLost, InvalidTransition):
            self._ledger.finish_run(
                run, RunStatus.CANCELLED, error=self._reason(why), error_type=why
            )

    def _reason(self, why: str) -> str:
        if why == "timeout":
            return f"timed out after {self._attempt.spec.timeout}"
        if why == "shutdown":
            return f"runner shutting down (grace {self._grace:g} s)"
        return "cancel requested, but the job did not stop within the cancel grace"

    def _outcome(self) -> Outcome:
        run = self._run
        if self._busy:
            return Outcome(None, None, busy=True)
        if run is None:
            return Outcome(None, None, self._error)
        if run.status is RunStatus.RUNNING:  # cut off: re-read what was recorded
            return Outcome(run.id, self._ledger.get_run(run.id).status, self._error)
        return Outcome(run.id, run.status, self._error)
