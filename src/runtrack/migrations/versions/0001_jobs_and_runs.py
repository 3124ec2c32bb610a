"""jobs and runs

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Microsecond timestamps on MySQL/MariaDB; SQLite auto-increments only INTEGER keys.
TS = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LONGTEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_run_id", ID, nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("last_finished_at", TS, nullable=True),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("last_success_run_id", ID, nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("watermark", TS, nullable=True),
        sa.Column("checkpoint", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_jobs")),
    )

    op.create_table(
        "runs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("job_key", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lease_key", sa.String(length=267), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of", ID, nullable=True),
        sa.Column("triggered_by", sa.String(length=255), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("cancel_requested_at", TS, nullable=True),
        sa.Column("cancel_requested_by", sa.String(length=255), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("counters", sa.JSON(), nullable=True),
        sa.Column("progress_total", sa.BigInteger(), nullable=True),
        sa.Column("progress_done", sa.BigInteger(), nullable=False),
        sa.Column("window_start", TS, nullable=True),
        sa.Column("window_end", TS, nullable=True),
        sa.Column("moves_watermark", sa.Boolean(), nullable=False),
        sa.Column("checkpoint", sa.JSON(), nullable=True),
        sa.Column("error_type", sa.String(length=255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_stack", LONGTEXT, nullable=True),
        sa.Column("error_details", sa.JSON(), nullable=True),
        sa.Column("notes", sa.JSON(), nullable=True),
        sa.Column("items_success", sa.Integer(), nullable=False),
        sa.Column("items_not_found", sa.Integer(), nullable=False),
        sa.Column("items_skipped", sa.Integer(), nullable=False),
        sa.Column("items_error", sa.Integer(), nullable=False),
        sa.Column("groups_found", sa.Integer(), nullable=True),
        sa.Column("groups_missing", sa.Integer(), nullable=True),
        sa.Column("retry_policy", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["job_key"], ["jobs.key"], name=op.f("fk_runs_job_key_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("lease_key", name=op.f("uq_runs_lease_key")),
        sa.UniqueConstraint("uid", name=op.f("uq_runs_uid")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_finished_at"), ["finished_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_job_key_id"), ["job_key", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_runs_job_key_started_at"), ["job_key", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_runs_provider_id"), ["provider", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_runs_status_heartbeat_at"), ["status", "heartbeat_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_runs_status_id"), ["status", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_runs_status_started_at"), ["status", "started_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_runs_triggered_by_id"), ["triggered_by", "id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("runs")
    op.drop_table("jobs")
