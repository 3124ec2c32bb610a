"""jobs.recent_runs (the status strip) and runs (job_key, status, id)

The overview showed each job's last 30 runs by reading them from the runs
table: 6,000 rows for 200 jobs on every refresh. Finalization now keeps the
strip on the job's row; this revision fills it from the runs that ended
before it. The index serves a job's runs in one status (without it planners
walk either the job's whole history or every job's runs of that status).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen copy of the strip format of store/rows.py as of this revision.
RECENT_CHARS = 1600
STRIP_LENGTH = 30
CODES = {"success": "s", "partial": "p", "failed": "f", "cancelled": "c"}


def upgrade() -> None:
    op.add_column("jobs", sa.Column("recent_runs", sa.String(length=RECENT_CHARS)))
    op.create_index("ix_runs_job_key_status_id", "runs", ["job_key", "status", "id"])
    _backfill()


def downgrade() -> None:
    op.drop_index("ix_runs_job_key_status_id", table_name="runs")
    # Not a batch (table copy): jobs is referenced by runs, and SQLite
    # (3.35 and later) drops a plain column in place.
    op.drop_column("jobs", "recent_runs")


def _ms(value: datetime) -> int:
    # Naive UTC, or aware on drivers that return aware timestamps.
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return round(aware.timestamp() * 1000)


def _cell(run_id: int, status: str, started: datetime | None, finished: datetime) -> str:
    took = "" if started is None else str(max(_ms(finished) - _ms(started), 0))
    return f"{run_id},{CODES[status]},{_ms(finished)},{took};"


def _backfill() -> None:
    """Each job's last 30 finished runs, by id, newest first."""
    conn = op.get_bind()
    meta = sa.MetaData()
    jobs = sa.Table("jobs", meta, autoload_with=conn)
    runs = sa.Table("runs", meta, autoload_with=conn)
    for (key,) in conn.execute(sa.select(jobs.c.key)).all():
        finished = conn.execute(
            sa.select(runs.c.id, runs.c.status, runs.c.started_at, runs.c.finished_at)
            .where(runs.c.job_key == key, runs.c.status.in_(list(CODES)))
            .where(runs.c.finished_at.is_not(None))
            .order_by(runs.c.id.desc())
            .limit(STRIP_LENGTH)
        ).all()
        strip = "".join(_cell(*row) for row in finished)[:RECENT_CHARS]
        if strip:
            conn.execute(sa.update(jobs).where(jobs.c.key == key).values(recent_runs=strip))
