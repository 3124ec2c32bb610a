"""Which driver errors the store retries (pure classification, no server)."""

from __future__ import annotations

import pymysql
import pytest
from sqlalchemy.exc import OperationalError

from runtrack.store import dialects


@pytest.mark.parametrize(
    ("errno", "sqlstate"),
    [(1213, "40001"), (1305, "42000")],
    ids=["deadlock", "savepoint-lost-to-a-deadlock"],
)
def test_mysql_lock_errors_are_retried_whatever_their_sqlstate(errno: int, sqlstate: str) -> None:
    """PyMySQL errors carry a SQLSTATE: it must not hide the MySQL error
    number that says "retry the transaction" (found by the load test: a
    deadlock inside the lease-slot savepoint reached the run's code)."""
    orig = pymysql.err.OperationalError(errno, "lock trouble")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]  # as PyMySQL sets it
    assert dialects.is_retryable(OperationalError("INSERT", {}, orig))


def test_a_lock_wait_timeout_is_not_retried_it_already_waited_its_bound() -> None:
    """Issue 15 (F13): the wait is bounded so that a frozen lock holder gives
    DatabaseBusy promptly; retrying would wait the bound again."""
    orig = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
    orig.sqlstate = "HY000"  # type: ignore[attr-defined]
    exc = OperationalError("UPDATE", {}, orig)
    assert dialects.is_lock_timeout(exc)
    assert not dialects.is_retryable(exc)
