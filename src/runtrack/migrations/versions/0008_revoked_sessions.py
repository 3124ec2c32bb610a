"""revoked_sessions: dashboard sign-outs that every server process honours

The dashboard's session cookie is signed, not stored, so it stayed valid for
its whole lifetime after "sign out". A sign-out now records the cookie's
nonce here until the cookie would have expired.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from runtrack.store.schema import ExactString

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    op.create_table(
        "revoked_sessions",
        sa.Column("nonce", ExactString(length=64), nullable=False),
        sa.Column("expires_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_revoked_sessions")),
    )
    op.create_index(op.f("ix_revoked_sessions_expires_at"), "revoked_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_revoked_sessions_expires_at", table_name="revoked_sessions")
    op.drop_table("revoked_sessions")
