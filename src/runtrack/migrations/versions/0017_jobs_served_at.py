"""jobs.served_at (a pending run expires only when no live worker serves its job)

Issue 17: the pending TTL expired every pending run older than it, even while
a live runner serving its job was only busy. A worker's registration and
heartbeats now bump its jobs' ``served_at``; the reaper expires a pending run
only if its job's ``served_at`` is older than the live cutoff.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("served_at", Timestamp))


def downgrade() -> None:
    op.drop_column("jobs", "served_at")
