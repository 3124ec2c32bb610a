"""Rows to records and back: the one place naive database timestamps become
aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from sqlalchemy import Row

from runtrack.alerts import IncidentKind, IncidentRecord
from runtrack.models import (
    DEFAULT_MAX_CARRY_ATTEMPTS,
    ItemRecord,
    ItemStatus,
    JobRecord,
    JobTally,
    OnPartial,
    PauseRecord,
    RunBrief,
    RunOutcome,
    RunRecord,
    RunStatus,
)
from runtrack.store.schema import DURATION_BOUNDS, STRIP_LENGTH, job_tallies

__all__ = [
    "aware_required",
    "incident_record",
    "item_record",
    "job_record",
    "naive",
    "pause_record",
    "run_brief",
    "run_outcomes",
    "run_record",
    "strip_cell",
    "tally_record",
]


@overload
def naive(value: datetime) -> datetime: ...
@overload
def naive(value: datetime | None) -> datetime | None: ...
def naive(value: datetime | None) -> datetime | None:
    """An aware datetime as the naive UTC value the tables store."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def aware_required(value: datetime | None) -> datetime:
    """``aware`` for a NOT NULL column."""
    result = aware(value)
    assert result is not None  # NOT NULL column
    return result


# -- status strips -----------------------------------------------------------
# A job's strip is a string of cells, newest first: "<run id>,<status
# code>,<finished, Unix ms>,<duration ms or empty>;" (at most 52 characters).
# Finalization prepends a cell and cuts the string to its column's length,
# which may leave a cut cell at the end: it has no ";" and is not read.
_CODES = {
    RunStatus.SUCCESS: "s",
    RunStatus.PARTIAL: "p",
    RunStatus.FAILED: "f",
    RunStatus.CANCELLED: "c",
}
_STATUSES = {code: status for status, code in _CODES.items()}
# Failed runs that do not count toward the streak (see runtrack/health.py):
# "r" a failed attempt with a retry scheduled, "l" a rate-limited attempt.
_NOTES = {"retried": "r", "rate_limited": "l"}
_NOTED = {code: note for note, code in _NOTES.items()}
_STATUSES.update(dict.fromkeys(_NOTED, RunStatus.FAILED))
_CELL = re.compile(r"(\d+),([spfcrl]),(\d+),(\d*);")


def _ms(value: datetime) -> int:
    """Unix milliseconds of a naive UTC timestamp."""
    return round(value.replace(tzinfo=UTC).timestamp() * 1000)


def strip_cell(
    run_id: int,
    status: RunStatus,
    started: datetime | None,
    finished: datetime,
    note: str | None = None,
) -> str:
    """The strip cell of a run that just became terminal (``note``: see
    :attr:`RunOutcome.note`, failed runs only)."""
    end = naive(finished)
    assert end is not None
    start = naive(started)
    took = "" if start is None else str(max(_ms(end) - _ms(start), 0))
    code = _NOTES[note] if note is not None and status is RunStatus.FAILED else _CODES[status]
    return f"{run_id},{code},{_ms(end)},{took};"


def run_outcomes(strip: str | None) -> list[RunOutcome]:
    """A job's strip as records, newest first."""
    found = []
    for run_id, code, finished, took in _CELL.findall(strip or "")[:STRIP_LENGTH]:
        found.append(
            RunOutcome(
                id=int(run_id),
                status=_STATUSES[code],
                finished_at=datetime.fromtimestamp(int(finished) / 1000, UTC),
                duration=timedelta(milliseconds=int(took)) if took else None,
                note=_NOTED.get(code),
            )
        )
    return found


def run_record(row: Row[Any], labels: dict[str, str] | None = None) -> RunRecord:
    """A row of ``runs`` and the run's labels (read from ``run_labels``)."""
    m = row._mapping
    return RunRecord(
        id=m["id"],
        uid=m["uid"],
        job=m["job_key"],
        provider=m["provider"],
        status=RunStatus(m["status"]),
        attempt=m["attempt"],
        retry_of=m["retry_of"],
        triggered_by=m["triggered_by"],
        params=m["params"],
        host=m["host"],
        pid=m["pid"],
        worker_id=m["worker_id"],
        created_at=aware_required(m["created_at"]),
        started_at=aware(m["started_at"]),
        finished_at=aware(m["finished_at"]),
        heartbeat_at=aware(m["heartbeat_at"]),
        cancel_requested_at=aware(m["cancel_requested_at"]),
        cancel_requested_by=m["cancel_requested_by"],
        cancel_reason=m["cancel_reason"],
        counters=dict(m["counters"] or {}),
        progress_total=m["progress_total"],
        progress_done=m["progress_done"],
        window_start=aware(m["window_start"]),
        window_end=aware(m["window_end"]),
        moves_watermark=bool(m["moves_watermark"]),
        checkpoint=m["checkpoint"],
        error_type=m["error_type"],
        error_message=m["error_message"],
        error_stack=m["error_stack"],
        error_details=m["error_details"],
        notes=list(m["notes"] or []),
        items={
            "success": m["items_success"],
            "not_found": m["items_not_found"],
            "skipped": m["items_skipped"],
            "error": m["items_error"],
        },
        groups_found=m["groups_found"],
        groups_missing=m["groups_missing"],
        retry_policy=m["retry_policy"],
        on_partial=OnPartial(m["on_partial"] or OnPartial.CARRY),
        max_carry_attempts=m["max_carry_attempts"] or DEFAULT_MAX_CARRY_ATTEMPTS,
        rerun_of=m["rerun_of"],
        backfill_id=m["backfill_id"],
        labels=labels or {},
    )


def run_brief(row: Row[Any]) -> RunBrief:
    m = row._mapping
    return RunBrief(
        id=m["id"],
        job=m["job_key"],
        status=RunStatus(m["status"]),
        created_at=aware_required(m["created_at"]),
        started_at=aware(m["started_at"]),
        finished_at=aware(m["finished_at"]),
    )


def job_record(row: Row[Any]) -> JobRecord:
    m = row._mapping
    return JobRecord(
        key=m["key"],
        provider=m["provider"],
        created_at=aware_required(m["created_at"]),
        last_run_id=m["last_run_id"],
        last_status=RunStatus(m["last_status"]) if m["last_status"] else None,
        last_finished_at=aware(m["last_finished_at"]),
        last_success_at=aware(m["last_success_at"]),
        last_success_run_id=m["last_success_run_id"],
        consecutive_failures=m["consecutive_failures"],
        watermark=aware(m["watermark"]),
        checkpoint=m["checkpoint"],
        next_due_at=aware(m.get("next_due_at")),
        schedule=m.get("schedule"),
        schedule_tz=m.get("schedule_tz"),
        ticks_skipped=m.get("ticks_skipped") or 0,
        last_skipped_at=aware(m.get("last_skipped_at")),
        last_skip_reason=m.get("last_skip_reason"),
    )


def item_record(row: Row[Any]) -> ItemRecord:
    m = row._mapping
    return ItemRecord(
        id=m["id"],
        run_id=m["run_id"],
        key=m["key"],
        status=ItemStatus(m["status"]),
        group=m["group_key"],
        source=m["source"],
        data=m["data"],
        error=m["error"],
        recorded_at=aware_required(m["recorded_at"]),
    )


def pause_record(row: Row[Any]) -> PauseRecord:
    m = row._mapping
    return PauseRecord(
        provider=m["provider"],
        until=aware_required(m["paused_until"]),
        reason=m["reason"],
        paused_at=aware_required(m["paused_at"]),
        paused_by=m["paused_by"],
    )


#: Positions in a row of ``select(job_tallies, jobs.c.provider)``: hundreds of
#: rows of 26 columns per scrape, read by position rather than by name.
_TALLY = {column.name: i for i, column in enumerate(job_tallies.c)}
_PROVIDER = len(_TALLY)
_ITEM_TALLIES = tuple((status.value, _TALLY[f"items_{status.value}"]) for status in ItemStatus)
_BUCKETS = slice(_TALLY[f"le_{DURATION_BOUNDS[0]}"], _TALLY[f"le_{DURATION_BOUNDS[-1]}"] + 1)


def tally_record(row: Row[Any]) -> JobTally:
    """A row of ``select(job_tallies, jobs.c.provider)``."""
    return JobTally(
        job=row[_TALLY["job_key"]],
        provider=row[_PROVIDER],
        status=RunStatus(row[_TALLY["status"]]),
        runs=int(row[_TALLY["runs"]]),
        items={status: int(row[i]) for status, i in _ITEM_TALLIES},
        duration_count=int(row[_TALLY["duration_count"]]),
        duration_sum=float(row[_TALLY["duration_sum"]]),
        duration_buckets=tuple([int(n) for n in row[_BUCKETS]]),
    )


def incident_record(row: Row[Any]) -> IncidentRecord:
    m = row._mapping
    return IncidentRecord(
        id=m["id"],
        job=m["job_key"],
        kind=IncidentKind(m["kind"]),
        opened_at=aware_required(m["opened_at"]),
        resolved_at=aware(m["resolved_at"]),
        reminded_at=aware(m["reminded_at"]),
        run_id=m["run_id"],
        details=dict(m["details"] or {}),
    )
