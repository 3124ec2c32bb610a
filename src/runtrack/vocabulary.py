"""The JSON vocabulary: one shape per record, shared by the HTTP API and every
``--json`` of the CLI.

Each function turns a record of :mod:`runtrack.models` into a plain dict of
snake_case names whose values are JSON-ready except for datetimes and enums
(the API's models and the CLI's encoder write those the same way: ISO 8601
UTC with a ``Z``, and the enum's value). The API's response models validate
these dicts (so ``/openapi.json`` documents exactly them) and the CLI prints
them; a test compares the two outputs for the same records.

The shapes:

- a list: ``{"data": [...], "next_cursor": ...}``, or by page number
  ``{"data": [...], "pagination": {"page", "limit", "total", "total_pages",
  "total_exact"}}``;
- a run: flat identity and times, ``counters``, nested ``progress``,
  ``items``, ``error``, ``labels`` (name -> value, ``{}`` without); the
  detail adds ``window``, ``groups``, ``cancel`` and where it ran;
- a job: ``last_run`` and ``last_success`` both ``{"run_id", "status",
  "finished_at"}``; ``paused`` is the provider's pause or ``null``;
- a provider: ``{"name", "jobs", "paused"}``; a pause: ``{"provider",
  "until", "reason", "paused_at", "paused_by"}``;
- a worker: identity, ``state`` (live, stopped, dead), times, ``jobs`` (each
  ``{"key", "schedule", "tz"}``) and ``running`` (each ``{"run_id", "job",
  "started_at", "heartbeat_at"}``). A job's ``next_due_local`` is its next
  due time on its schedule's zone clock (ISO 8601 with the zone's offset).
- a backfill (issue 17): its range, ``every_seconds``, ``state`` and
  ``progress`` (``{"done", "failed", "queued", "running", "missing"}``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from runtrack.backfills import BackfillRecord
from runtrack.models import (
    GroupSummary,
    ItemRecord,
    JobState,
    NumberedPage,
    PauseRecord,
    ProviderState,
    RunRecord,
)
from runtrack.workers import WorkerRecord, on_wall_clock

__all__ = [
    "backfill",
    "cursor_page",
    "group",
    "item",
    "job",
    "numbered_page",
    "pause",
    "provider",
    "run_detail",
    "run_summary",
    "worker",
]

Shape = dict[str, Any]


def _seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds()


def run_summary(run: RunRecord, now: datetime) -> Shape:
    """A run in a listing."""
    error = None
    if run.error_type or run.error_message:
        error = {"type": run.error_type, "message": run.error_message}
    return {
        "id": run.id,
        "uid": run.uid,
        "job": run.job,
        "provider": run.provider,
        "status": run.status,
        "attempt": run.attempt,
        "triggered_by": run.triggered_by,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "heartbeat_at": run.heartbeat_at,
        "duration_seconds": _seconds(run.duration),
        "progress": {
            "done": run.progress_done,
            "total": run.progress_total,
            "percent": run.percent,
            "eta_seconds": _seconds(run.eta(now)),
        },
        "counters": run.counters,
        "items": run.items,
        "error": error,
        "labels": run.labels,
    }


def run_detail(run: RunRecord, now: datetime, *, private: bool = True) -> Shape:
    """One run with everything recorded about it. Without ``private`` the
    error's stack and details (which can hold secrets) are ``null``."""
    shape = run_summary(run, now)
    if shape["error"] is not None:
        shape["error"] = {
            **shape["error"],
            "stack": run.error_stack if private else None,
            "details": run.error_details if private else None,
        }
    cancel = None
    if run.cancel_requested_at is not None:
        cancel = {
            "requested_at": run.cancel_requested_at,
            "requested_by": run.cancel_requested_by,
            "reason": run.cancel_reason,
        }
    shape.update(
        retry_of=run.retry_of,
        rerun_of=run.rerun_of,
        backfill_id=run.backfill_id,
        params=run.params,
        host=run.host,
        pid=run.pid,
        worker_id=run.worker_id,
        window={"start": run.window_start, "end": run.window_end},
        moves_watermark=run.moves_watermark,
        checkpoint=run.checkpoint,
        cancel=cancel,
        groups={"found": run.groups_found, "missing": run.groups_missing},
        notes=run.notes,
        retry_policy=run.retry_policy,
    )
    return shape


def item(record: ItemRecord) -> Shape:
    """One per-item outcome of a run."""
    return {
        "id": record.id,
        "run_id": record.run_id,
        "key": record.key,
        "status": record.status,
        "group": record.group,
        "source": record.source,
        "data": record.data,
        "error": record.error,
        "recorded_at": record.recorded_at,
    }


def group(summary: GroupSummary) -> Shape:
    """The item outcomes of one group of a run."""
    return {
        "group": summary.group,
        "counts": summary.counts,
        "found": summary.found,
        "found_in": list(summary.found_in),
    }


def pause(record: PauseRecord | None) -> Shape | None:
    """A provider pause in force, or ``None``."""
    if record is None:
        return None
    return {
        "provider": record.provider,
        "until": record.until,
        "reason": record.reason,
        "paused_at": record.paused_at,
        "paused_by": record.paused_by,
    }


def job(state: JobState) -> Shape:
    """A job's state."""
    record = state.job
    last_run = last_success = None
    if record.last_run_id is not None:
        last_run = {
            "run_id": record.last_run_id,
            "status": record.last_status,
            "finished_at": record.last_finished_at,
        }
    if record.last_success_run_id is not None:
        last_success = {
            "run_id": record.last_success_run_id,
            "status": "success",
            "finished_at": record.last_success_at,
        }
    return {
        "key": record.key,
        "provider": record.provider,
        "created_at": record.created_at,
        "last_run": last_run,
        "last_success": last_success,
        "consecutive_failures": record.consecutive_failures,
        "watermark": record.watermark,
        "checkpoint": record.checkpoint,
        "next_due_at": record.next_due_at,
        "schedule": record.schedule,
        "schedule_tz": record.schedule_tz,
        "next_due_local": _local(record.next_due_at, record.schedule_tz),
        "ticks_skipped": record.ticks_skipped,
        "last_skipped_at": record.last_skipped_at,
        "last_skip_reason": record.last_skip_reason,
        "active_runs": state.active_runs,
        "running_runs": state.running_runs,
        "paused": pause(state.pause),
    }


def _local(instant: datetime | None, tz: str | None) -> str | None:
    local = on_wall_clock(instant, tz)
    return None if local is None else local.isoformat()


def worker(record: WorkerRecord) -> Shape:
    """A runner process: who it is, whether it lives, what it serves and runs."""
    return {
        "id": record.id,
        "state": record.state,
        "host": record.host,
        "pid": record.pid,
        "version": record.version,
        "concurrency": record.concurrency,
        "started_at": record.started_at,
        "last_seen_at": record.last_seen_at,
        "stopped_at": record.stopped_at,
        "jobs": [{"key": j.key, "schedule": j.schedule, "tz": j.tz} for j in record.jobs],
        "running": [
            {
                "run_id": r.run_id,
                "job": r.job,
                "started_at": r.started_at,
                "heartbeat_at": r.heartbeat_at,
            }
            for r in record.running
        ],
    }


def provider(state: ProviderState) -> Shape:
    """A provider known from its jobs or its pause."""
    return {"name": state.name, "jobs": state.jobs, "paused": pause(state.pause)}


def backfill(record: BackfillRecord) -> Shape:
    """A backfill and where its windows stand."""
    p = record.progress
    return {
        "id": record.id,
        "job": record.job,
        "start": record.start,
        "end": record.end,
        "every_seconds": record.every.total_seconds(),
        "windows": record.windows,
        "max_parallel": record.max_parallel,
        "triggered_by": record.triggered_by,
        "created_at": record.created_at,
        "state": record.state,
        "progress": {
            "done": p.done,
            "failed": p.failed,
            "queued": p.queued,
            "running": p.running,
            "missing": p.missing,
        },
    }


def cursor_page(data: Iterable[Shape], next_cursor: str | None) -> Shape:
    """A page of a keyset-paginated list (``null`` cursor on the last page)."""
    return {"data": list(data), "next_cursor": next_cursor}


def numbered_page(data: Iterable[Shape], page: NumberedPage[Any]) -> Shape:
    """A page of a list by page number, with its totals."""
    return {
        "data": list(data),
        "pagination": {
            "page": page.page,
            "limit": page.limit,
            "total": page.total,
            "total_pages": page.total_pages,
            "total_exact": page.total_exact,
        },
    }
