"""MySQL/MariaDB: every VARCHAR column compared byte for byte

The server default collation (utf8mb4_general_ci) folds case, accents and
trailing spaces: ``x:Cafe``, ``x:café`` and ``x:cafe `` were one job key, one
lease, one provider pause, one item group. Every VARCHAR column now carries
the binary NO PAD collation (utf8mb4_nopad_bin on MariaDB, utf8mb4_0900_bin
on MySQL 8), so keys are compared as SQLite and PostgreSQL compare them. The
stored values do not change, and no unique key can collide (the new
collation tells more values apart, never fewer). Nothing to do elsewhere.

Downgrading folds the keys again: it fails with a duplicate-key error if
keys that differ only by case, accent or trailing space were stored since.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from runtrack.store.dialects import exact_collation

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("jobs", "runs", "run_items", "provider_pauses", "maintenance", "job_tallies")


def upgrade() -> None:
    _collate(exact=True)


def downgrade() -> None:
    _collate(exact=False)


def _collate(exact: bool) -> None:
    """One ALTER TABLE per table, every VARCHAR column in it; with exact off,
    back to the table's default collation. The foreign keys on job keys
    refuse a change of collation on one side at a time: they are dropped
    and made again (checked again, so bad data fails here, not later)."""
    conn = op.get_bind()
    if conn.dialect.name not in ("mysql", "mariadb"):
        return
    collate = f" COLLATE {exact_collation(conn.dialect)}" if exact else ""
    quote = conn.dialect.identifier_preparer.quote
    inspector = sa.inspect(conn)
    columns = {table: inspector.get_columns(table) for table in TABLES}
    keyed = [
        (table, fk)
        for table in TABLES
        for fk in inspector.get_foreign_keys(table)
        if any(_is_varchar(columns[table], name) for name in fk["constrained_columns"])
    ]
    if exact:
        _respell_job_references()
    for table, fk in keyed:
        op.drop_constraint(str(fk["name"]), table, type_="foreignkey")
    for table in TABLES:
        changes = [
            f"MODIFY {quote(column['name'])} VARCHAR({column['type'].length}){collate} "
            + ("NULL" if column["nullable"] else "NOT NULL")
            for column in columns[table]
            if isinstance(column["type"], sa.VARCHAR)
        ]
        if changes:
            conn.exec_driver_sql(f"ALTER TABLE {quote(table)} " + ", ".join(changes))
    for table, fk in keyed:
        op.create_foreign_key(
            fk["name"],
            table,
            fk["referred_table"],
            fk["constrained_columns"],
            fk["referred_columns"],
        )


def _is_varchar(columns: Sequence[Mapping[str, Any]], name: str) -> bool:
    return any(c["name"] == name and isinstance(c["type"], sa.VARCHAR) for c in columns)


def _respell_job_references() -> None:
    """The old collation let a run or a tally name its job in another
    spelling (``x:Job`` for the job ``x:job``): it was that job. Spell it as
    the job row does, lease included, so the references hold byte for byte."""
    op.execute(
        "UPDATE runs JOIN jobs ON runs.job_key = jobs.`key` "
        "SET runs.lease_key = CASE WHEN runs.lease_key IS NULL THEN NULL "
        "ELSE CONCAT(jobs.`key`, '#', SUBSTRING_INDEX(runs.lease_key, '#', -1)) END, "
        "runs.job_key = jobs.`key` "
        "WHERE BINARY runs.job_key <> BINARY jobs.`key`"
    )
    op.execute(
        "UPDATE job_tallies JOIN jobs ON job_tallies.job_key = jobs.`key` "
        "SET job_tallies.job_key = jobs.`key` "
        "WHERE BINARY job_tallies.job_key <> BINARY jobs.`key`"
    )
