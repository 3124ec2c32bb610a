"""runs.backfill_id and its index; backfills

Issue 17: a backfill records a range of a job's past and queues one run per
fixed window of it (``runs.backfill_id``); ``ix_runs_backfill`` (partial on
PostgreSQL and SQLite) serves its progress, its resume and the claim check
of its ``max_parallel``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from runtrack.store.schema import ExactString

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("runs", sa.Column("backfill_id", Id))
    op.create_index(
        "ix_runs_backfill",
        "runs",
        ["backfill_id", "status", "id"],
        postgresql_where=sa.text("backfill_id IS NOT NULL"),
        sqlite_where=sa.text("backfill_id IS NOT NULL"),
    )
    op.create_table(
        "backfills",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("job_key", ExactString(length=255), nullable=False),
        sa.Column("range_start", Timestamp, nullable=False),
        sa.Column("range_end", Timestamp, nullable=False),
        sa.Column("step_seconds", sa.Integer(), nullable=False),
        sa.Column("windows", sa.Integer(), nullable=False),
        sa.Column("max_parallel", sa.Integer()),
        sa.Column("triggered_by", ExactString(length=255), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("state", ExactString(length=16), nullable=False),
        sa.ForeignKeyConstraint(["job_key"], ["jobs.key"], name="fk_backfills_job_key_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_backfills"),
    )
    op.create_index("ix_backfills_job_key_id", "backfills", ["job_key", "id"])


def downgrade() -> None:
    op.drop_table("backfills")  # with its index (MariaDB keeps it for the foreign key)
    op.drop_index("ix_runs_backfill", table_name="runs")
    # A plain drop (no table copy, as 0013): SQLite 3.35 and later drops in place.
    op.drop_column("runs", "backfill_id")
