"""run_labels: a run's labels (name -> value), filtered on by listings

Issue 16: ``ledger.run(job, labels={"team": "growth"})`` keeps the labels with
the run, written in the transaction of its insert; ``list_runs(labels=...)``
reads a label's runs newest first as a backwards range of
(key, value, run_id). A run's labels go with it (ON DELETE CASCADE).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runtrack.store.schema import ExactString

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "run_labels",
        sa.Column("run_id", Id, nullable=False),
        sa.Column("key", ExactString(length=63), nullable=False),
        sa.Column("value", ExactString(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_labels_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_run_labels"),
    )
    op.create_index("ix_run_labels_key_value_run_id", "run_labels", ["key", "value", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_labels_key_value_run_id", table_name="run_labels")
    op.drop_table("run_labels")
