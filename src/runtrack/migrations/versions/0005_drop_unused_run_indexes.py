"""runs: drop the (job_key, started_at) and (finished_at) indexes

No query uses them (the benchmark suite records every query's plan): runs of
a job are read by (job_key, id), and retention walks the primary key. Each
index on runs costs every run's insert and finalization.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_runs_job_key_started_at", table_name="runs")
    op.drop_index("ix_runs_finished_at", table_name="runs")


def downgrade() -> None:
    op.create_index("ix_runs_finished_at", "runs", ["finished_at"])
    op.create_index("ix_runs_job_key_started_at", "runs", ["job_key", "started_at"])
