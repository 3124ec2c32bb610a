"""Revoked dashboard sessions in the store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from runtrack.store import dialects
from runtrack.store.base import Transactions
from runtrack.store.rows import naive
from runtrack.store.schema import revoked_sessions

__all__ = ["SessionStore"]


class SessionStore:
    """Sign-outs of stateless session cookies, shared by every server process."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def revoke_session(self, nonce: str, expires_at: datetime, now: datetime) -> None:
        """Remember ``nonce`` as signed out until ``expires_at``; forget the
        sign-outs whose cookies have expired anyway."""
        values = {"nonce": nonce, "expires_at": naive(expires_at)}

        def work(conn: Connection) -> None:
            conn.execute(delete(revoked_sessions).where(revoked_sessions.c.expires_at < naive(now)))
            conn.execute(dialects.insert_ignore(conn, revoked_sessions, values))

        self.tx.write(work)

    def session_revoked(self, nonce: str) -> bool:
        query = select(revoked_sessions.c.nonce).where(revoked_sessions.c.nonce == nonce)
        return self.tx.read(lambda c: c.execute(query).first()) is not None
