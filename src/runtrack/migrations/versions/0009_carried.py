"""carried (what a job owes: failed items and slices) and the runs' partial policy

A partial run's failed items and the slices of its window it could not fetch
are carried to the job's next runs until they succeed or are given up. Runs
record their policy (``on_partial``, ``max_carry_attempts``; NULL: the
defaults) for the finalizations that do not hold the run's handle.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from runtrack.store.schema import ExactString

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("runs", sa.Column("on_partial", ExactString(length=8)))
    op.add_column("runs", sa.Column("max_carry_attempts", sa.Integer()))
    op.create_table(
        "carried",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("job_key", ExactString(length=255), nullable=False),
        sa.Column("kind", ExactString(length=8), nullable=False),
        sa.Column("state", ExactString(length=16), nullable=False),
        sa.Column("item_key", ExactString(length=512)),
        sa.Column("group_key", ExactString(length=255)),
        sa.Column("source", ExactString(length=255)),
        sa.Column("data", sa.JSON()),
        sa.Column("slice_start", Timestamp),
        sa.Column("slice_end", Timestamp),
        sa.Column("last_error", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_run_id", Id, nullable=False),
        sa.Column("last_run_id", Id, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["job_key"], ["jobs.key"], name="fk_carried_job_key_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_carried"),
    )
    op.create_index("ix_carried_job_key_state_id", "carried", ["job_key", "state", "id"])
    op.create_index("ix_carried_first_run_id", "carried", ["first_run_id"])


def downgrade() -> None:
    op.drop_table("carried")  # its indexes with it (MariaDB's FK needs one till then)
    # Plain drops (no table copy): SQLite 3.35 and later drops a column in place.
    op.drop_column("runs", "max_carry_attempts")
    op.drop_column("runs", "on_partial")
