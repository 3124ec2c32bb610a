"""run items, provider pauses, maintenance

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Microsecond timestamps on MySQL/MariaDB; SQLite auto-increments only INTEGER keys.
TS = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LONGTEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "maintenance",
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("last_run_at", TS, nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("task", name=op.f("pk_maintenance")),
    )

    op.create_table(
        "provider_pauses",
        sa.Column("provider", sa.String(length=255), nullable=False),
        sa.Column("paused_until", TS, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("paused_at", TS, nullable=False),
        sa.Column("paused_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_pauses")),
    )

    op.create_table(
        "run_items",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("group_key", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_items_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_items")),
    )
    with op.batch_alter_table("run_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_run_items_run_id_group_key_id"),
            ["run_id", "group_key", "id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_run_items_run_id_id"), ["run_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_run_items_run_id_status_id"), ["run_id", "status", "id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("run_items")
    op.drop_table("maintenance")
    op.drop_table("provider_pauses")
