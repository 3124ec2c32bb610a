"""Shared fixtures: every storage test runs on SQLite, PostgreSQL and MariaDB.

Each pytest session gets its own PostgreSQL and MariaDB database (so parallel
sessions never collide), migrated once; each test starts from empty tables.
Without a reachable server those backends skip with a one-line reason, except
under ``CI=true``, where a missing server is an error.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from runtrack import Ledger, ManualClock
from runtrack.store import dialects, migrate
from runtrack.store.schema import metadata

PG_ADMIN = os.environ.get("RUNTRACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
MY_ADMIN = os.environ.get("RUNTRACK_TEST_MARIADB", "mysql://root@127.0.0.1:3306/mysql")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ["sqlite", "postgresql", "mariadb"]


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in a tier's conftest: two conftests may not both add an option.
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="reliability and hosts tiers: the big numbers (minutes) instead of the CI sizes",
    )


class ServerDatabases:
    """Creates one throwaway database per server for this pytest session."""

    def __init__(self) -> None:
        self.name = f"rt_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.urls: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def url(self, backend: str) -> str:
        if backend not in self.urls and backend not in self.errors:
            self._create(backend)
        if backend in self.errors:
            message = f"{backend} not reachable: {self.errors[backend]}"
            if IN_CI:
                pytest.fail(f"CI=true requires {message}")
            pytest.skip(message)
        return self.urls[backend]

    def _create(self, backend: str) -> None:
        admin = sa.make_url(
            dialects.normalize_url(PG_ADMIN if backend == "postgresql" else MY_ADMIN)
        )
        try:
            engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {self.name}")
            engine.dispose()
        except Exception as exc:  # a missing server or driver: skip with its reason
            self.errors[backend] = str(exc).splitlines()[0][:160]
            return
        url = admin.set(database=self.name).render_as_string(hide_password=False)
        self.urls[backend] = url
        migrated = dialects.make_engine(url)
        migrate.upgrade(migrated)
        migrated.dispose()

    def drop_all(self) -> None:
        for backend in self.urls:
            admin = sa.make_url(
                dialects.normalize_url(PG_ADMIN if backend == "postgresql" else MY_ADMIN)
            )
            engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                if backend == "postgresql":
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.name}")
            engine.dispose()


@pytest.fixture(scope="session")
def servers() -> Iterator[ServerDatabases]:
    found = ServerDatabases()
    yield found
    found.drop_all()


@pytest.fixture(scope="session")
def shadow_servers() -> Iterator[ServerDatabases]:
    """A second database per server, for tests that compare two databases."""
    found = ServerDatabases()
    yield found
    found.drop_all()


def empty_tables(url: str) -> None:
    engine = dialects.make_engine(url)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated once per session; each test gets a copy (a
    copy takes about a millisecond, a migration about 75 ms)."""
    path = tmp_path_factory.mktemp("migrated") / "ledger.db"
    engine = dialects.make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # the last connection's close checkpoints the WAL into the file
    return path


@pytest.fixture
def db_url(backend: str, servers: ServerDatabases, tmp_path: Path, migrated_sqlite: Path) -> str:
    """A migrated, empty database of ``backend``."""
    if backend == "sqlite":
        for suffix in ("", "-wal"):
            if Path(f"{migrated_sqlite}{suffix}").exists():
                shutil.copyfile(f"{migrated_sqlite}{suffix}", tmp_path / f"ledger.db{suffix}")
        return f"sqlite:///{tmp_path}/ledger.db"
    url = servers.url(backend)
    empty_tables(url)
    return url


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    with Ledger(db_url, heartbeat_interval=0.05) as opened:
        yield opened


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def manual_ledger(
    db_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Ledger]:
    """A ledger whose time only moves when the test moves ``clock`` (and no
    notification sink unless the test sets one)."""
    monkeypatch.delenv("RUNTRACK_NOTIFY", raising=False)
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as opened:
        yield opened
