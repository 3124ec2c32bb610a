"""runs.rerun_of, runs.priority, the queue index; provider_limits

Issue 17: the runs table is the queue. A pending run holds no lease until a
worker claims it, by priority then age (``ix_runs_queue``, partial where the
database allows); a re-run names the run it repeats; a provider limit caps
that provider's running runs across every worker.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from runtrack.store.schema import ExactString

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("runs", sa.Column("rerun_of", Id))
    op.add_column("runs", sa.Column("priority", sa.Integer()))
    op.create_index(
        "ix_runs_queue",
        "runs",
        ["status", "priority", "id"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "provider_limits",
        sa.Column("provider", ExactString(length=255), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_limits")),
    )


def downgrade() -> None:
    op.drop_table("provider_limits")
    op.drop_index("ix_runs_queue", table_name="runs")
    # Plain drops (no table copy): SQLite 3.35 and later drops a column in place.
    op.drop_column("runs", "priority")
    op.drop_column("runs", "rerun_of")
