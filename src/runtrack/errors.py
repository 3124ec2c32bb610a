"""Every exception runtrack raises.

All errors derive from :class:`RuntrackError` and carry structured fields next
to a message that says what was wrong and what is allowed. The HTTP API and
the CLI map these classes to status codes and exit codes in one table each.

One deliberate exception to the hierarchy: :class:`RunCancelled` derives from
``BaseException`` (like ``asyncio.CancelledError`` and ``KeyboardInterrupt``),
because it is control flow, not an error. Ingestion loops are full of
``except Exception:`` around each item; a cancel must not be swallowed there.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

__all__ = [
    "ConfigurationError",
    "DatabaseUnavailable",
    "Fatal",
    "InvalidCursor",
    "InvalidInput",
    "InvalidTransition",
    "JobBusy",
    "JobNotFound",
    "LeaseLost",
    "RateLimited",
    "RunCancelled",
    "RunNotCancellable",
    "RunNotFound",
    "RuntrackError",
    "SchedulingError",
    "Transient",
]


class RuntrackError(Exception):
    """runtrack failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class InvalidInput(RuntrackError, ValueError):
    """An argument was not valid; nothing was written."""

    def __init__(self, field: str, problem: str, allowed: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        text = f"{field}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class InvalidCursor(InvalidInput):
    """A pagination cursor this ledger did not issue (or an edited one)."""

    def __init__(self) -> None:
        super().__init__(
            "cursor", "is not a cursor this ledger issued", "the next_cursor of a previous page"
        )


class ConfigurationError(RuntrackError):
    """runtrack is misconfigured."""


class DatabaseUnavailable(RuntrackError):
    """The database could not be reached or refused the operation."""


class RunNotFound(RuntrackError, LookupError):
    """No run has this id."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} does not exist")


class JobNotFound(RuntrackError, LookupError):
    """No job has this key."""

    def __init__(self, job: str) -> None:
        self.job = job
        super().__init__(f"job {job!r} does not exist (a job is created by its first run)")


class InvalidTransition(RuntrackError):
    """A run cannot move from its current status to the one attempted."""

    def __init__(self, run_id: int, current: str, attempted: str) -> None:
        self.run_id = run_id
        self.current = current
        self.attempted = attempted
        super().__init__(
            f"run {run_id} is {current}; it cannot become {attempted}"
            + (" (terminal runs never change)" if current in _TERMINAL_NAMES else "")
        )


class RunNotCancellable(InvalidTransition):
    """Only pending or running runs can be cancelled."""

    def __init__(self, run_id: int, current: str) -> None:
        super().__init__(run_id, current, "cancelled")
        self.args = (f"run {run_id} is {current}; only pending or running runs can be cancelled",)


class JobBusy(RuntrackError):
    """The job already has as many active runs as its concurrency allows."""

    def __init__(self, job: str, active_run_ids: list[int], concurrency: int) -> None:
        self.job = job
        self.active_run_ids = active_run_ids
        self.concurrency = concurrency
        ids = ", ".join(str(i) for i in active_run_ids) or "unknown"
        super().__init__(
            f"job {job!r} is busy: active run(s) {ids} hold all {concurrency} "
            "slot(s); wait for them, cancel them, or raise concurrency"
        )


class LeaseLost(RuntrackError):
    """This process no longer owns the run: it was reaped or finalized elsewhere.

    Nothing the run handle writes after this changes the database."""

    def __init__(self, run_id: int, status: str | None) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(
            f"run {run_id} is no longer owned by this worker (it is now {status}); "
            "its further writes are discarded"
        )


class RunCancelled(BaseException):
    """The run was asked to stop (a cancel request, a shutdown or a timeout).

    Raised inside the run block at its next interaction with the run handle.
    The ``with`` block ends the run ``cancelled`` and does not re-raise it.
    Derives from ``BaseException`` so that ``except Exception:`` in ingestion
    code cannot swallow it.
    """

    def __init__(self, run_id: int, reason: str | None = None, error_type: str = "cancelled"):
        self.run_id = run_id
        self.reason = reason
        self.error_type = error_type
        super().__init__(f"run {run_id} was cancelled" + (f": {reason}" if reason else ""))


class SchedulingError(InvalidInput):
    """A job registration or schedule is invalid (raised when the job is
    registered, not when it is due)."""

    def __init__(self, job: str, field: str, problem: str, allowed: str | None = None) -> None:
        super().__init__(field, problem, allowed)
        self.job = job
        self.args = (f"job {job!r}: {self.args[0]}",)


class Transient(RuntrackError):
    """A failure worth retrying (network blip, 5xx): raise it, or wrap with it."""


class Fatal(RuntrackError):
    """A failure that retrying cannot fix (bad credentials, bad query)."""


class RateLimited(RuntrackError):
    """The provider asked us to slow down; its jobs pause for ``retry_after``."""

    def __init__(self, retry_after: timedelta | float, message: str | None = None) -> None:
        seconds = retry_after.total_seconds() if isinstance(retry_after, timedelta) else retry_after
        if not isinstance(seconds, int | float) or seconds < 0:
            raise InvalidInput("retry_after", f"got {retry_after!r}", "a duration >= 0")
        self.retry_after = timedelta(seconds=seconds)
        super().__init__(message or f"rate limited: retry after {seconds:g} s")


_TERMINAL_NAMES = {"success", "partial", "failed", "cancelled"}


def describe(value: Any, limit: int = 60) -> str:
    """A short ``repr`` for error messages (never the whole payload)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
