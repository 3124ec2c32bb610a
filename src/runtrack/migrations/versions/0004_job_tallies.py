"""job_tallies: per job and terminal status totals for metrics

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen copy of store.schema.DURATION_BOUNDS as of this revision.
BOUNDS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)
TERMINAL = ("success", "partial", "failed", "cancelled")


def upgrade() -> None:
    op.create_table(
        "job_tallies",
        sa.Column("job_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("items_success", sa.BigInteger(), nullable=False),
        sa.Column("items_not_found", sa.BigInteger(), nullable=False),
        sa.Column("items_skipped", sa.BigInteger(), nullable=False),
        sa.Column("items_error", sa.BigInteger(), nullable=False),
        sa.Column("duration_count", sa.BigInteger(), nullable=False),
        sa.Column("duration_sum", sa.Double(), nullable=False),
        *(sa.Column(f"le_{bound}", sa.BigInteger(), nullable=False) for bound in BOUNDS),
        sa.ForeignKeyConstraint(
            ["job_key"], ["jobs.key"], name=op.f("fk_job_tallies_job_key_jobs")
        ),
        sa.PrimaryKeyConstraint("job_key", "status", name=op.f("pk_job_tallies")),
    )
    _backfill()


def _seconds(started: str, finished: str) -> str:
    """SQL for the seconds between two timestamp columns, per database."""
    name = op.get_bind().dialect.name
    if name == "sqlite":
        return f"((julianday({finished}) - julianday({started})) * 86400.0)"
    if name == "postgresql":
        return f"EXTRACT(EPOCH FROM ({finished} - {started}))"
    return f"(TIMESTAMPDIFF(MICROSECOND, {started}, {finished}) / 1000000.0)"


def _backfill() -> None:
    """Tally the runs that ended before this revision, in one statement."""
    d = _seconds("started_at", "finished_at")
    timed = "started_at IS NOT NULL AND finished_at IS NOT NULL"
    buckets = []
    lower = None
    for bound in BOUNDS:
        low = f" AND {d} > {lower}" if lower is not None else ""
        buckets.append(f"SUM(CASE WHEN {timed} AND {d} <= {bound}{low} THEN 1 ELSE 0 END)")
        lower = bound
    columns = ", ".join(f"le_{b}" for b in BOUNDS)
    statuses = ", ".join(f"'{s}'" for s in TERMINAL)
    op.execute(
        "INSERT INTO job_tallies (job_key, status, runs, items_success, items_not_found, "
        f"items_skipped, items_error, duration_count, duration_sum, {columns}) "
        "SELECT job_key, status, COUNT(*), SUM(items_success), SUM(items_not_found), "
        f"SUM(items_skipped), SUM(items_error), SUM(CASE WHEN {timed} THEN 1 ELSE 0 END), "
        f"COALESCE(SUM(CASE WHEN {timed} THEN {d} ELSE 0 END), 0), {', '.join(buckets)} "
        f"FROM runs WHERE status IN ({statuses}) GROUP BY job_key, status"
    )


def downgrade() -> None:
    op.drop_table("job_tallies")
