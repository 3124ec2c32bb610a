"""Throwaway databases for the suite: SQLite files in a temporary directory,
PostgreSQL databases created on the server named by ``RUNTRACK_BENCH_POSTGRES``
(default: the local trust-auth server) and dropped at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import sqlalchemy as sa

from runtrack.store import dialects, migrate

__all__ = ["Databases"]

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


class Databases:
    """Creates migrated, empty databases on demand and removes them all."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="runtrack-bench-"))
        self._prefix = f"rt_bench_{os.getpid()}"
        self._created: list[str] = []
        admin = os.environ.get("RUNTRACK_BENCH_POSTGRES", DEFAULT_POSTGRES)
        self.pg_admin: str | None = dialects.normalize_url(admin)
        self.pg_error = ""
        self.pg_version: str | None = None
        try:
            with self._admin() as conn:
                self.pg_version = str(conn.exec_driver_sql("SHOW server_version").scalar())
        except Exception as exc:  # no server or no driver: the PostgreSQL measures skip
            self.pg_error = str(exc).splitlines()[0][:200]
            self.pg_admin = None

    def _admin(self) -> sa.Connection:
        assert self.pg_admin is not None
        engine = sa.create_engine(
            self.pg_admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )
        return engine.connect()

    def sqlite_url(self, name: str, *, migrated: bool = True) -> str:
        url = f"sqlite:///{self.dir / name}.db"
        if migrated:
            _migrate(url)
        return url

    def postgres_url(self, name: str, *, migrated: bool = True, template: str | None = None) -> str:
        """A new database ``name`` (a copy of database ``template`` if given)."""
        assert self.pg_admin is not None, self.pg_error
        database = f"{self._prefix}_{name}"
        with self._admin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            copy = f" TEMPLATE {template}" if template else ""
            conn.exec_driver_sql(f"CREATE DATABASE {database}{copy}")
        self._created.append(database)
        url = sa.make_url(self.pg_admin).set(database=database).render_as_string(False)
        if migrated and template is None:
            _migrate(url)
        return url

    def postgres_exists(self, database: str) -> bool:
        with self._admin() as conn:
            query = sa.text("SELECT 1 FROM pg_database WHERE datname = :name")
            return conn.execute(query, {"name": database}).first() is not None

    def postgres_server_url(self, database: str) -> str:
        assert self.pg_admin is not None
        return sa.make_url(self.pg_admin).set(database=database).render_as_string(False)

    def postgres_execute(self, sql: str) -> None:
        """One statement on the admin connection (CREATE/DROP/ALTER DATABASE)."""
        with self._admin() as conn:
            conn.exec_driver_sql(sql)

    def close(self) -> None:
        if self.pg_admin is not None:
            with self._admin() as conn:
                for database in self._created:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(self.dir, ignore_errors=True)


def _migrate(url: str) -> None:
    engine = dialects.make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
