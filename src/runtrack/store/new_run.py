"""A new run's row: the one place that knows which columns a run starts
with (every start, claim-start, trigger and backfill window builds a
:class:`~runtrack.store.values.NewRun`; the store writes it through here)."""

from __future__ import annotations

from typing import Any

from runtrack.models import RunStatus
from runtrack.store.rows import naive
from runtrack.store.values import NewRun

__all__ = ["run_row"]


#: NewRun fields written only when set (their columns default to NULL).
_WHEN_SET = (
    "on_partial",
    "max_carry_attempts",
    "rerun_of",
    "backfill_id",
    "priority",
    "host",
    "pid",
    "worker_id",
)


def run_row(new: NewRun) -> dict[str, Any]:
    """The columns of a new run's row (naive UTC times). Each kind of start
    writes the same columns every time, so that its statement is built once."""
    at = naive(new.created_at)  # one object for every stamp of "now": bound once
    end = new.window_end
    row: dict[str, Any] = {
        "uid": new.uid,
        "job_key": new.job,
        "provider": new.provider,
        "status": new.status.value,
        "attempt": new.attempt,
        "retry_of": new.retry_of,
        "triggered_by": new.triggered_by,
        "params": new.params,
        "created_at": at,
        "counters": {},
        "progress_done": 0,
        "window_start": naive(new.window_start),
        "window_end": at if end is new.created_at else naive(end),
        "moves_watermark": new.moves_watermark,
        "retry_policy": new.retry_policy,
        "items_success": 0,
        "items_not_found": 0,
        "items_skipped": 0,
        "items_error": 0,
    }
    for name in _WHEN_SET:
        value = getattr(new, name)
        if value is not None:
            row[name] = value
    if new.status is RunStatus.RUNNING:
        row["started_at"] = row["heartbeat_at"] = at
    return row
