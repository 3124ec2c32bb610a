"""Bring a database to the schema this version of runtrack expects.

Alembic runs on a connection we open and close ourselves, under a lock so that
many processes opening the same ledger at once migrate it exactly once. The
engine stays open: the caller goes on using it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from runtrack.errors import DatabaseUnavailable
from runtrack.store import dialects

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["current_revision", "head_revision", "newest_shipped_revision", "upgrade"]

_LOCK_NAME = "runtrack_migrate"


def _config(connection: Connection | None = None) -> Config:
    # Alembic is imported only when a migration is checked in full or applied:
    # opening an up-to-date ledger (every CLI command, every cron line of
    # ``runtrack exec``) does without it (see :func:`_up_to_date`).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("runtrack") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


@contextmanager
def _translated() -> Iterator[None]:
    # Opening a ledger connects here first: an unreachable database must
    # surface as the domain error, like every later statement does.
    try:
        yield
    except DBAPIError as exc:
        raise DatabaseUnavailable(
            f"database error ({type(exc.orig).__name__}): {exc.orig}"
        ) from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with _translated(), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_NUMBERED = re.compile(r"^(\d{4})_\w+\.py$")


def newest_shipped_revision() -> str | None:
    """The revision of the newest ``NNNN_name.py`` file shipped (revision ids
    are these numbers, each following the one before)."""
    names = (entry.name for entry in (files("runtrack") / "migrations" / "versions").iterdir())
    numbers = [m.group(1) for m in map(_NUMBERED.match, names) if m]
    return max(numbers, default=None)


def _up_to_date(engine: Engine) -> bool:
    """True if the database stands at the newest shipped revision, read
    without alembic; False means "ask alembic" (an empty database, another
    revision, a table that cannot be read)."""
    with _translated(), engine.connect() as conn:
        try:
            stored = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except DBAPIError:
            return False
    return len(stored) == 1 and stored[0] == newest_shipped_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations up to ``revision`` (no-op when already there)."""
    if revision == "head" and (_up_to_date(engine) or current_revision(engine) == head_revision()):
        return
    from alembic import command

    with _translated(), engine.connect() as conn:
        conn.execution_options(**{dialects.IMMEDIATE: True})
        _lock(conn)
        try:
            with conn.begin():
                command.upgrade(_config(conn), revision)
        finally:
            _unlock(conn)


def _lock(conn: Connection) -> None:
    # Session-level locks so that MySQL's implicit commits around DDL do not
    # release them; SQLite serializes through BEGIN IMMEDIATE instead.
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_lock(hashtext(:n))"), {"n": _LOCK_NAME})
        conn.commit()
    elif conn.dialect.name in ("mysql", "mariadb"):
        conn.execute(text("SELECT GET_LOCK(:n, 120)"), {"n": _LOCK_NAME})
        conn.commit()


def _unlock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": _LOCK_NAME})
        conn.commit()
    elif conn.dialect.name in ("mysql", "mariadb"):
        conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _LOCK_NAME})
        conn.commit()
