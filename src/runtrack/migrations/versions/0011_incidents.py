"""expectations, incidents, deliveries; jobs.volume_history

Issue 18: what each job promises (stored so that any process can check it),
the incidents opened when a promise breaks, the notifications of their
transitions, and the last successful values of each job's guarded counters.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from runtrack.store.schema import ExactString

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("volume_history", sa.JSON()))
    op.create_table(
        "expectations",
        sa.Column("job_key", ExactString(length=255), nullable=False),
        sa.Column("success_within", sa.Double()),
        sa.Column("max_failures", sa.Integer()),
        sa.Column("volume", sa.JSON()),
        sa.Column("required", sa.JSON()),
        sa.Column("remind_every", sa.Double()),
        sa.Column("origin", ExactString(length=16), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["job_key"], ["jobs.key"], name="fk_expectations_job_key_jobs"),
        sa.PrimaryKeyConstraint("job_key", name="pk_expectations"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("job_key", ExactString(length=255), nullable=False),
        sa.Column("kind", ExactString(length=16), nullable=False),
        sa.Column("open_key", ExactString(length=275)),
        sa.Column("opened_at", Timestamp, nullable=False),
        sa.Column("resolved_at", Timestamp),
        sa.Column("reminded_at", Timestamp),
        sa.Column("run_id", Id),
        sa.Column("details", sa.JSON()),
        sa.ForeignKeyConstraint(["job_key"], ["jobs.key"], name="fk_incidents_job_key_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
        sa.UniqueConstraint("open_key", name="uq_incidents_open_key"),
    )
    op.create_index("ix_incidents_job_key_id", "incidents", ["job_key", "id"])
    op.create_table(
        "deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("incident_id", Id, nullable=False),
        sa.Column("event", ExactString(length=16), nullable=False),
        sa.Column("sink", sa.Text(), nullable=False),
        sa.Column("idempotency_key", ExactString(length=64), nullable=False),
        sa.Column("state", ExactString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("next_at", Timestamp, nullable=False),
        sa.Column("give_up_at", Timestamp, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("delivered_at", Timestamp),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_deliveries_incident_id_incidents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("idempotency_key", name="uq_deliveries_idempotency_key"),
    )
    op.create_index("ix_deliveries_state_next_at", "deliveries", ["state", "next_at"])
    op.create_index("ix_deliveries_incident_id", "deliveries", ["incident_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("incidents")
    op.drop_table("expectations")
    op.drop_column("jobs", "volume_history")
