"""jobs.volume_anomaly; jobs.volume_history holds only the values

Issue 18: the volume guard's history travels with the run (read by its
start, written by its finalization's job update), so it costs no query of
its own. The last anomaly, which the ``volume`` incident is about, gets a
column of its own so that checking finds the jobs with one in SQL; the
history keeps only the guarded counters' values (``{"counter": [v, ...]}``).
This revision moves each job's stored anomaly to the new column.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("volume_anomaly", sa.JSON()))
    conn = op.get_bind()
    jobs = _jobs()
    for key, stored in conn.execute(
        sa.select(jobs.c.key, jobs.c.volume_history).where(jobs.c.volume_history.is_not(None))
    ).all():
        old: dict[str, Any] = stored or {}
        values = old.get("values") or None
        anomaly = old.get("anomaly") or None
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.key == key)
            .values(volume_history=values, volume_anomaly=anomaly)
        )


def downgrade() -> None:
    conn = op.get_bind()
    jobs = _jobs()
    found = conn.execute(
        sa.select(jobs.c.key, jobs.c.volume_history, jobs.c.volume_anomaly).where(
            sa.or_(jobs.c.volume_history.is_not(None), jobs.c.volume_anomaly.is_not(None))
        )
    ).all()
    for key, values, anomaly in found:
        merged = {"values": values or {}, "anomaly": anomaly}
        conn.execute(sa.update(jobs).where(jobs.c.key == key).values(volume_history=merged))
    op.drop_column("jobs", "volume_anomaly")


def _jobs() -> sa.Table:
    """The columns of ``jobs`` this revision reads and writes (JSON typed, so
    that the values are converted as the application converts them)."""
    columns = [sa.Column("key", sa.String(255), primary_key=True)]
    # none_as_null: an empty history or no anomaly is SQL NULL, not JSON null.
    columns.append(sa.Column("volume_history", sa.JSON(none_as_null=True)))
    columns.append(sa.Column("volume_anomaly", sa.JSON(none_as_null=True)))
    return sa.Table("jobs", sa.MetaData(), *columns)
