"""The unit tier is pure logic: no database server, no database file.

A test here that asks for a database fixture fails at setup, and every
database driver's ``connect`` (sqlite3, psycopg, PyMySQL) raises: a test
that needs a database belongs to a storage tier (tests/ledger, tests/cli,
...), where it runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import importlib
import sqlite3
import sqlite3.dbapi2

import pytest

#: The fixtures of tests/conftest.py that open a database.
DATABASE_FIXTURES = frozenset({"servers", "shadow_servers", "backend", "db_url", "ledger"})
NO_DATABASE = "tests/unit is pure logic and has no database; move this test to a storage tier"


class NoDatabase(AssertionError):
    """A unit test tried to reach a database."""


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise NoDatabase(NO_DATABASE)


def pytest_runtest_setup(item: pytest.Item) -> None:
    asked = DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if asked:
        pytest.fail(f"{item.nodeid} asks for {sorted(asked)}: {NO_DATABASE}", pytrace=False)


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite3, "connect", _refuse)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", _refuse)  # what SQLAlchemy calls
    for driver in ("psycopg", "pymysql"):
        try:
            module = importlib.import_module(driver)
        except ImportError:  # not installed: nothing to connect with
            continue
        monkeypatch.setattr(module, "connect", _refuse)
    # A default URL, were one used, points nowhere.
    monkeypatch.setenv("RUNTRACK_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
