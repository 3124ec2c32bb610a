"""Migration 0010 (issue 18): old history reads the way health now reads it.
A failed run that a later attempt retried is marked retried, a run cancelled
by its timeout becomes failed (its tallies move with it), a rate limit is
named rate_limited, and each job's strip and failure streak are rebuilt."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from test_migrations_match_schema import _reset

from runtrack import Ledger
from runtrack.store import dialects, migrate
from runtrack.store.schema import job_tallies, jobs, runs

AT = datetime(2026, 1, 1)  # noqa: DTZ001 - columns hold naive UTC


def _run(
    conn: sa.Connection, n: int, status: str, error_type: str | None, retry_of: int | None
) -> int:
    values = {
        "uid": f"u{n}", "job_key": "old:job", "status": status, "attempt": 1,
        "retry_of": retry_of, "triggered_by": "schedule", "created_at": AT,
        "started_at": AT + timedelta(minutes=n),
        "finished_at": AT + timedelta(minutes=n, seconds=3),
        "progress_done": 0, "moves_watermark": True, "items_success": 0, "items_not_found": 0,
        "items_skipped": 0, "items_error": 0, "error_type": error_type,
    }  # fmt: skip
    return int(conn.execute(sa.insert(runs).values(values)).inserted_primary_key[0])


def _tally(conn: sa.Connection, status: str, count: int) -> None:
    amounts = {c.name: 0 for c in job_tallies.c if c.name not in ("job_key", "status")}
    amounts.update(runs=count, duration_count=count, duration_sum=3.0 * count, le_5=count)
    conn.execute(sa.insert(job_tallies).values(job_key="old:job", status=status, **amounts))


def test_0010_rewrites_old_history_as_health_reads_it(db_url: str) -> None:
    engine = dialects.make_engine(db_url)
    _reset(engine)
    migrate.upgrade(engine, "0009")
    with engine.begin() as conn:
        conn.execute(sa.insert(jobs).values(key="old:job", created_at=AT, consecutive_failures=4))
        first = _run(conn, 1, "failed", "builtins.ConnectionError", None)
        _run(conn, 2, "success", None, first)  # the retry of the first
        timed_out = _run(conn, 3, "cancelled", "timeout", None)
        limited = _run(conn, 4, "failed", "runtrack.errors.RateLimited", None)
        last = _run(conn, 5, "failed", "ValueError", None)
        _tally(conn, "cancelled", 1)
        _tally(conn, "failed", 3)
        _tally(conn, "success", 1)
    migrate.upgrade(engine)
    engine.dispose()

    with Ledger(db_url) as ledger:
        got = {r.id: r for r in ledger.list_runs(job="old:job").items}
        assert (got[timed_out].status.value, got[timed_out].error_type) == ("failed", "timeout")
        assert got[limited].error_type == "rate_limited"
        job = ledger.get_job("old:job")
        assert job is not None and job.consecutive_failures == 2  # runs 5 and 3; not 4
        strip = ledger.recent_outcomes(["old:job"])["old:job"]
        assert [(o.id, o.status.value, o.note) for o in strip] == [
            (last, "failed", None),
            (limited, "failed", "rate_limited"),
            (timed_out, "failed", None),
            (first + 1, "success", None),
            (first, "failed", "retried"),
        ]
        tallies = {t.status.value: t.runs for t in ledger.job_tallies() if t.job == "old:job"}
        assert tallies == {"cancelled": 0, "failed": 4, "success": 1}
        assert ledger.job_health("old:job").state.value == "failing"
