"""workers; jobs.schedule, jobs.schedule_tz

Issue 17: each runner process registers itself and heartbeats its row, so
operators see who is alive and what each runs; a job row keeps the schedule
its runners registered, with its time zone.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from runtrack.store.schema import ExactString

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("schedule", ExactString(length=255)))
    op.add_column("jobs", sa.Column("schedule_tz", ExactString(length=64)))
    op.create_table(
        "workers",
        sa.Column("id", ExactString(length=255), nullable=False),
        sa.Column("host", ExactString(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", ExactString(length=64), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("jobs", sa.JSON(), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("stopped_at", Timestamp),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )
    op.create_index("ix_workers_last_seen_at", "workers", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_workers_last_seen_at", table_name="workers")
    op.drop_table("workers")
    op.drop_column("jobs", "schedule_tz")
    op.drop_column("jobs", "schedule")
