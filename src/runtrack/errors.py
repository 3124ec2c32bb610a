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

import math
from datetime import timedelta
from typing import Any

__all__ = [
    "BackfillBusy",
    "BackfillNotFound",
    "CarriedNotFound",
    "ConfigurationError",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "Fatal",
    "InvalidCursor",
    "InvalidInput",
    "InvalidTransition",
    "JobBusy",
    "JobNotFound",
    "LeaseLost",
    "LedgerMissing",
    "ProviderBusy",
    "ProviderNotFound",
    "RateLimited",
    "RecordConflict",
    "RunCancelled",
    "RunFinished",
    "RunNotCancellable",
    "RunNotFound",
    "RuntrackError",
    "SchedulingError",
    "SchemaMissing",
    "Transient",
    "UnknownParameter",
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


class UnknownParameter(InvalidInput):
    """A request named a parameter the operation does not take."""

    def __init__(self, name: str, allowed: list[str]) -> None:
        super().__init__(name, "is not a parameter of this operation", ", ".join(allowed) or "none")


class ConfigurationError(RuntrackError):
    """runtrack is misconfigured."""


class DatabaseUnavailable(RuntrackError):
    """The database could not be reached or refused the operation."""


class DatabaseBusy(DatabaseUnavailable):
    """A row the operation needs stayed locked by another session for longer
    than the ledger waits (a worker frozen in its heartbeat transaction, for
    example): nothing was written, and the same call may succeed later (the
    runner's reaper tries again on its next cycle)."""


class RecordConflict(RuntrackError):
    """The database refused a write that conflicts with what it holds: a
    duplicate key, or a reference to a row that does not exist.

    The store checks what it can before writing; this reports the rest (rows
    edited by hand, a schema older than this version of runtrack), with the
    database's own words and the driver's error as ``__cause__``."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"the database refused the write: {detail} (allowed: keys not already "
            "stored, references to rows that exist; run `runtrack migrate` if the "
            "schema is older than this runtrack)"
        )


class SchemaMissing(DatabaseUnavailable):
    """The database has no runtrack schema (or lacks a table of it)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"the database has no runtrack schema ({detail}); create it with "
            "`runtrack migrate`, or open it with Ledger(url) (migrate=True, the default)"
        )


class LedgerMissing(RuntrackError):
    """A command that only reads was pointed at a SQLite file that does not exist."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"no ledger at {path}; `runtrack migrate` creates one")


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


class BackfillNotFound(RuntrackError, LookupError):
    """No backfill has this id."""

    def __init__(self, backfill_id: int) -> None:
        self.backfill_id = backfill_id
        super().__init__(f"backfill {backfill_id} does not exist")


class CarriedNotFound(RuntrackError, LookupError):
    """No carried entry of this job has this id."""

    def __init__(self, job: str, entry_id: int) -> None:
        self.job = job
        self.entry_id = entry_id
        super().__init__(
            f"job {job!r} owes no carried entry {entry_id} (resolved or forgotten already?); "
            "see the ids `runtrack carried JOB` lists"
        )


class ProviderNotFound(RuntrackError, LookupError):
    """No job uses this provider (pausing it would most likely pause a typo)."""

    def __init__(self, provider: str, known: list[str]) -> None:
        self.provider = provider
        self.known = known
        shown = ", ".join(known[:50]) or "none yet"
        super().__init__(
            f"provider {provider!r} is not used by any job (known providers: {shown}); "
            "check the spelling, or pause it anyway with create=True "
            '(CLI: --new, API: "create": true)'
        )


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


class RunFinished(RuntrackError):
    """The run handle was used after its run ended; nothing was recorded."""

    def __init__(self, run_id: int, status: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(
            f"run {run_id} has ended ({status}); its handle records nothing more "
            "(use it only inside its `with ledger.run(...)` block)"
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


class ProviderBusy(RuntrackError):
    """The provider already has as many running runs as its limit allows."""

    def __init__(self, provider: str, max_running: int) -> None:
        self.provider = provider
        self.max_running = max_running
        super().__init__(
            f"provider {provider!r} is at its limit of {max_running} running run(s); "
            "wait for one to end, or raise it with `runtrack limit`"
        )


class BackfillBusy(RuntrackError):
    """The run is a backfill's window and the backfill already has as many
    running runs as its ``max_parallel`` allows."""

    def __init__(self, run_id: int, backfill_id: int) -> None:
        self.run_id = run_id
        self.backfill_id = backfill_id
        super().__init__(
            f"run {run_id} is a window of backfill {backfill_id}, which is at its "
            "max_parallel; wait for one of its running windows to end"
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
    """The provider asked us to slow down; its jobs pause for ``retry_after``.

    The message comes first, as in every error:
    ``RateLimited("HTTP 429 from maps API", retry_after=20)``. ``retry_after``
    is a timedelta or seconds; ``None`` means the retry policy's
    ``rate_limit_pause``. The order of 0.x, ``RateLimited(20)`` or
    ``RateLimited(timedelta(...), "message")``, still works: a number or a
    timedelta first cannot be a message.
    """

    def __init__(
        self,
        message: str | timedelta | float | None = None,
        retry_after: timedelta | float | str | None = None,
    ) -> None:
        if isinstance(message, timedelta | int | float) and not isinstance(message, bool):
            # The 0.x order: (retry_after, message).
            message, retry_after = (
                retry_after if isinstance(retry_after, str) else None,
                message,
            )
        if message is not None and not isinstance(message, str):
            raise InvalidInput("message", f"got {describe(message)}", "a string")
        self.retry_after = _retry_after(retry_after)
        if message is None:
            wait = "" if self.retry_after is None else f": retry after {self.retry_after}"
            message = f"rate limited{wait}"
        super().__init__(message)


def _retry_after(value: object) -> timedelta | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not (math.isfinite(seconds) and seconds >= 0)
    ):
        raise InvalidInput("retry_after", f"got {describe(value)}", "a timedelta or seconds >= 0")
    return timedelta(seconds=seconds)


_TERMINAL_NAMES = {"success", "partial", "failed", "cancelled"}


def describe(value: Any, limit: int = 60) -> str:
    """A short ``repr`` for error messages (never the whole payload); never
    raises, whatever the value's ``__repr__`` does."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object: repr() raised>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
