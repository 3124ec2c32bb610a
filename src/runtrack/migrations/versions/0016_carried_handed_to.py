"""carried.handed_to_run_id, runs.carried_upto (each owed entry handed to one run at a time)

Issue 23: concurrent runs of one job (``concurrency`` > 1, or a queue's
runners) were all handed the same owed entries and counted their attempts
twice. A run that reads what its job owes as the job's only running run holds
every owed entry up to ``runs.carried_upto`` (one row written); a run that
reads while others run claims the entries no running run holds
(``carried.handed_to_run_id``), released at its end.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("carried", sa.Column("handed_to_run_id", Id))
    op.add_column("runs", sa.Column("carried_upto", Id))


def downgrade() -> None:
    op.drop_column("runs", "carried_upto")
    op.drop_column("carried", "handed_to_run_id")
