"""A job's health: one word an operator can act on, judged from what the job
row already holds (no query of the runs table).

``healthy``, ``running`` (a run is active), ``retrying`` (its last attempt
failed and a retry is scheduled), ``failing`` (its last tick ended failed
after its retries: the failure streak counts such ticks, not attempts),
``late`` (no success within its expectation) and ``paused`` (its provider
is paused). Rate-limited attempts and attempts that were retried are
failures that the streak does not count (see
:func:`runtrack.failures.failure_note`). Pure: no I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from runtrack.errors import RunCancelled
from runtrack.models import (
    RATE_LIMITED,
    TIMEOUT,
    JobRecord,
    JobState,
    PauseRecord,
    RunOutcome,
    RunStatus,
)
from runtrack.readable import clock, span

__all__ = [
    "HealthState",
    "JobHealth",
    "ended_by_timeout",
    "failure_text",
    "judge",
    "late_by",
    "late_since",
    "outcome_label",
]


class HealthState(StrEnum):
    """A job's health, most urgent to act on first in :func:`judge`'s order."""

    HEALTHY = "healthy"
    RUNNING = "running"
    RETRYING = "retrying"
    FAILING = "failing"
    LATE = "late"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class JobHealth:
    """A job's health and the sentence that explains it."""

    state: HealthState
    reason: str


def ended_by_timeout(
    status: RunStatus, cancel: RunCancelled | None, error_type: str | None
) -> RunStatus:
    """A run stopped by its job's ``timeout`` ends ``failed``: ``cancelled``
    is kept for an operator's cancel and for a shutdown."""
    timed_out = error_type == TIMEOUT or (cancel is not None and cancel.error_type == TIMEOUT)
    return RunStatus.FAILED if status is RunStatus.CANCELLED and timed_out else status


def judge(
    state: JobState,
    outcomes: Sequence[RunOutcome],
    *,
    now: datetime,
    success_within: timedelta | None = None,
) -> JobHealth:
    """The job's health from its state (its row, how many of its runs are
    running and queued, its provider's pause in force), its strip (newest
    first) and its expectation. Queued runs alone are not "running": what
    holds them back (a pause, failures, lateness) is the job's state, they
    are noted."""
    newest = outcomes[0] if outcomes else None
    if state.running_runs:
        return JobHealth(HealthState.RUNNING, f"{state.running_runs} run(s) running")
    verdict = _idle(state.job, newest, state.pause, now, success_within)
    queued = state.queued_runs
    if queued:
        reason = "" if verdict.state is HealthState.HEALTHY else f"{verdict.reason}; "
        return JobHealth(verdict.state, f"{reason}{queued} run(s) queued")
    return verdict


def _idle(
    job: JobRecord,
    newest: RunOutcome | None,
    pause: PauseRecord | None,
    now: datetime,
    success_within: timedelta | None,
) -> JobHealth:
    """The health of a job none of whose runs is running."""
    if newest is not None and newest.note == "retried":
        return JobHealth(HealthState.RETRYING, f"run {newest.id} failed; a retry is scheduled")
    if pause is not None and pause.until > now:
        return JobHealth(HealthState.PAUSED, f"provider paused until {clock(pause.until)}")
    if job.consecutive_failures:
        return JobHealth(
            HealthState.FAILING,
            f"{job.consecutive_failures} tick(s) in a row failed after their retries",
        )
    late = late_by(job, now, success_within)
    if late is not None:
        return JobHealth(HealthState.LATE, late)
    return JobHealth(HealthState.HEALTHY, "ok")


def late_by(job: JobRecord, now: datetime, success_within: timedelta | None) -> str | None:
    """Why the job is late (``None``: it is not): no success within
    ``success_within`` of its last success, or of its creation if it never
    succeeded."""
    if success_within is None:
        return None
    within = success_within.total_seconds()
    return late_since(job.last_success_at, job.created_at, now, within)


def late_since(
    last_success_at: datetime | None, created_at: datetime, now: datetime, within: float
) -> str | None:
    """:func:`late_by` on the job's two times (all aware, or all naive UTC as
    the store's rows hold them) and ``within`` seconds."""
    since = last_success_at or created_at
    if (now - since).total_seconds() <= within:
        return None
    what = "last success" if last_success_at else "never succeeded; first seen"
    return f"no success within {span(within)}: {what} {clock(since)}"


def outcome_label(status: RunStatus, note: str | None, error_type: str | None = None) -> str:
    """How a finished run reads: ``failed, retried``, ``failed for good``,
    ``rate limited``, ``timed out``, or its status."""
    if status is not RunStatus.FAILED:
        return status.value
    if note == "rate_limited":
        return "rate limited"
    if note == "retried":
        return "failed, retried"
    if error_type == TIMEOUT:
        return "timed out"
    return "failed for good"


def failure_text(error_type: str | None, details: object) -> str:
    """A run's error type as an operator reads it: a rate limit is a provider
    pause (``rate limited: provider paused until T``), not a crash."""
    if error_type == RATE_LIMITED:
        until = details.get("paused_until") if isinstance(details, dict) else None
        if not isinstance(until, str):
            return "rate limited"
        with contextlib.suppress(ValueError):  # an ISO time in the details (JSON)
            until = clock(datetime.fromisoformat(until).astimezone(UTC))
        return f"rate limited: provider paused until {until}"
    return error_type or "error"
