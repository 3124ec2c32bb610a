"""jobs.ticks_skipped, jobs.last_skipped_at, jobs.last_skip_reason

Issue 21: a scheduled tick the runner claimed but could not start, because
the job's concurrency slots were held or its provider was at its limit, was
skipped with only a log line. The job row now counts those ticks and keeps
the last one's time and reason, so an operator sees why a tick did not run.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from runtrack.store.schema import ExactString

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    # The server default gives the existing rows 0.
    op.add_column(
        "jobs",
        sa.Column("ticks_skipped", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("jobs", sa.Column("last_skipped_at", Timestamp))
    op.add_column("jobs", sa.Column("last_skip_reason", ExactString(length=255)))


def downgrade() -> None:
    op.drop_column("jobs", "last_skip_reason")
    op.drop_column("jobs", "last_skipped_at")
    op.drop_column("jobs", "ticks_skipped")
