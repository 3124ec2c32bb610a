"""runs.retried; old history read the way health now reads it

A job's failure streak counts ticks whose final attempt failed, not attempts:
a failed attempt whose retry was scheduled is marked ``retried``; a run ended
by its timeout ends ``failed`` (``cancelled`` is kept for an operator's
cancel and a shutdown); a rate-limited run's ``error_type`` is
``rate_limited``. This revision rewrites the runs that ended before it that
way, moves the timeouts' tallies from ``cancelled`` to ``failed``, and
rebuilds each job's strip and failure streak.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Frozen copies of store/rows.py and store/schema.py as of this revision.
RECENT_CHARS = 1600
STRIP_LENGTH = 30
CODES = {"success": "s", "partial": "p", "failed": "f", "cancelled": "c"}
NOTE_CODES = {"retried": "r", "rate_limited": "l"}
DURATION_BOUNDS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)
ITEMS = ("items_success", "items_not_found", "items_skipped", "items_error")
CHUNK = 500


def upgrade() -> None:
    op.add_column("runs", sa.Column("retried", sa.Boolean()))
    conn = op.get_bind()
    meta = sa.MetaData()
    jobs = sa.Table("jobs", meta, autoload_with=conn)
    runs = sa.Table("runs", meta, autoload_with=conn)
    tallies = sa.Table("job_tallies", meta, autoload_with=conn)
    conn.execute(
        sa.update(runs)
        .where(runs.c.error_type == "runtrack.errors.RateLimited")
        .values(error_type="rate_limited")
    )
    _mark_retried(conn, runs)
    _timeouts_fail(conn, runs, tallies)
    for (key,) in conn.execute(sa.select(jobs.c.key)).all():
        _rebuild_job(conn, jobs, runs, key)


def downgrade() -> None:
    # The status and type rewrites stay: they are how the history reads now.
    op.drop_column("runs", "retried")


def _mark_retried(conn: sa.Connection, runs: sa.Table) -> None:
    """A failed run that a later attempt retried (MySQL cannot update a table
    from a subquery on itself: the ids are read first)."""
    retried = [
        row[0]
        for row in conn.execute(
            sa.select(runs.c.retry_of).where(runs.c.retry_of.is_not(None)).distinct()
        )
    ]
    for start in range(0, len(retried), CHUNK):
        chunk = retried[start : start + CHUNK]
        conn.execute(
            sa.update(runs)
            .where(runs.c.id.in_(chunk), runs.c.status == "failed")
            .values(retried=True)
        )


def _timeouts_fail(conn: sa.Connection, runs: sa.Table, tallies: sa.Table) -> None:
    timed_out = conn.execute(
        sa.select(runs).where(runs.c.status == "cancelled", runs.c.error_type == "timeout")
    ).all()
    for row in timed_out:
        m = row._mapping
        conn.execute(sa.update(runs).where(runs.c.id == m["id"]).values(status="failed"))
        amounts = _tally_amounts(m)
        _add_tally(conn, tallies, m["job_key"], "cancelled", amounts, -1)
        _add_tally(conn, tallies, m["job_key"], "failed", amounts, 1)


def _tally_amounts(m: Any) -> dict[str, float]:
    amounts: dict[str, float] = {"runs": 1, **{c: int(m[c] or 0) for c in ITEMS}}
    amounts.update({"duration_count": 0, "duration_sum": 0.0})
    amounts.update({f"le_{b}": 0 for b in DURATION_BOUNDS})
    if m["started_at"] is not None and m["finished_at"] is not None:
        seconds = max((m["finished_at"] - m["started_at"]).total_seconds(), 0.0)
        amounts.update(duration_count=1, duration_sum=seconds)
        bucket = next((b for b in DURATION_BOUNDS if seconds <= b), None)
        if bucket is not None:
            amounts[f"le_{bucket}"] = 1
    return amounts


def _add_tally(
    conn: sa.Connection,
    tallies: sa.Table,
    job: str,
    status: str,
    amounts: dict[str, float],
    sign: int,
) -> None:
    where = (tallies.c.job_key == job, tallies.c.status == status)
    changes = {name: tallies.c[name] + sign * value for name, value in amounts.items()}
    if conn.execute(sa.update(tallies).where(*where).values(changes)).rowcount == 0 and sign > 0:
        conn.execute(sa.insert(tallies).values(job_key=job, status=status, **amounts))


def _ms(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return round(aware.timestamp() * 1000)


def _note(m: Any) -> str | None:
    if m["status"] != "failed":
        return None
    if m["error_type"] == "rate_limited":
        return "rate_limited"
    return "retried" if m["retried"] else None


def _cell(m: Any) -> str:
    note = _note(m)
    code = NOTE_CODES[note] if note else CODES[m["status"]]
    took = (
        "" if m["started_at"] is None else str(max(_ms(m["finished_at"]) - _ms(m["started_at"]), 0))
    )
    return f"{m['id']},{code},{_ms(m['finished_at'])},{took};"


def _rebuild_job(conn: sa.Connection, jobs: sa.Table, runs: sa.Table, key: str) -> None:
    """The job's strip (its last 30 finished runs, by id, newest first) and
    its failure streak (failures for good since its last success/partial)."""
    columns = (
        runs.c.id,
        runs.c.status,
        runs.c.error_type,
        runs.c.retried,
        runs.c.started_at,
        runs.c.finished_at,
    )
    streak, counting, before = 0, True, None
    strip: list[str] = []
    while counting or len(strip) < STRIP_LENGTH:
        query = sa.select(*columns).where(runs.c.job_key == key, runs.c.status.in_(list(CODES)))
        if before is not None:
            query = query.where(runs.c.id < before)
        rows: Sequence[Any] = conn.execute(query.order_by(runs.c.id.desc()).limit(CHUNK)).all()
        for row in rows:
            m = row._mapping
            if len(strip) < STRIP_LENGTH and m["finished_at"] is not None:
                strip.append(_cell(m))
            if counting and m["status"] in ("success", "partial"):
                counting = False
            elif counting and m["status"] == "failed" and _note(m) is None:
                streak += 1
        if len(rows) < CHUNK:
            break
        before = rows[-1][0]
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.key == key)
        .values(recent_runs="".join(strip)[:RECENT_CHARS] or None, consecutive_failures=streak)
    )
