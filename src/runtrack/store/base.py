"""The store's foundation: transactions, retries and driver-error translation.

Driver errors are translated to :mod:`runtrack.errors` here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Engine,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from runtrack.errors import DatabaseBusy, DatabaseUnavailable, RecordConflict, SchemaMissing
from runtrack.store import dialects
from runtrack.store.drivers import driver_for
from runtrack.store.prepared import Prepared, RawConnection, raw_transaction

T = TypeVar("T")


class Transactions:
    """One engine, and the transactions every part of the store runs in
    (each part holds the same one)."""

    def __init__(self, engine: Engine, *, retry_seconds: float = 5.0) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._retry_seconds = retry_seconds
        #: Statements prepared on the driver's connections (the hot path).
        self.prepared: dict[Any, Prepared] = {}
        #: Whether a transaction's statements can go in one round trip
        #: (:meth:`RawConnection.pipelined`: PostgreSQL with psycopg).
        self.pipelines = driver_for(engine.dialect).pipelines

    # -- transactions ---------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError as exc:
            # Never the driver's own error: callers see one domain error
            # whatever the database (the store catches it where it is expected).
            raise RecordConflict("; ".join(str(exc.orig).split("\n"))[:500]) from exc
        except DBAPIError as exc:
            missing = dialects.missing_table(exc)
            if missing is not None:
                raise SchemaMissing(missing) from exc
            if dialects.is_lock_timeout(exc):
                raise DatabaseBusy(
                    "database busy: a row this needs stayed locked by another session "
                    f"past the lock wait ({exc.orig}); nothing was written, try again later"
                ) from exc
            raise DatabaseUnavailable(
                f"database error ({type(exc.orig).__name__}): {exc.orig}"
            ) from exc

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(dialects.is_retryable),
            wait=wait_random_exponential(multiplier=0.02, max=1.0),
            stop=stop_after_delay(self._retry_seconds) | stop_after_attempt(50),
            reraise=True,
        )

    def retried(self, once: Callable[[], T]) -> T:
        """``once()``, retried whole on lock contention, deadlocks and dropped
        connections. The first attempt runs bare: building the retry policy
        costs more than the statements of a run, and it is rarely needed."""
        with self._translated():
            try:
                return once()
            except DBAPIError as exc:
                if not dialects.is_retryable(exc):
                    raise
            for attempt in self._retrying():
                with attempt:
                    return once()
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, work: Callable[[Connection], T], *, read_committed: bool = False) -> T:
        """Run ``work`` in one write transaction, retried whole on lock
        contention, deadlocks and dropped connections. ``read_committed``:
        READ COMMITTED on MySQL/MariaDB too (the queue's claims), so that a
        count taken after a lock sees what the lock's holder committed."""
        options: dict[str, Any] = {dialects.IMMEDIATE: True}
        if read_committed and self.dialect in ("mysql", "mariadb"):
            options["isolation_level"] = "READ COMMITTED"

        def once() -> T:
            with self.engine.connect() as conn:
                conn.execution_options(**options)
                with conn.begin():
                    return work(conn)

        return self.retried(once)

    def write_prepared(self, work: Callable[[RawConnection], T]) -> T:
        """:meth:`write` for the hot path: ``work`` may execute only long-lived
        statements, which run prepared on the driver's connection."""
        return self.retried(lambda: raw_transaction(self.engine, self.prepared, work))

    def read(self, work: Callable[[Connection], T]) -> T:
        """``work`` in one read transaction. It ends with COMMIT, which for a
        read undoes nothing a ROLLBACK would: psycopg forgets every statement
        it prepared on the connection at a ROLLBACK (a rollback may have
        dropped what they name), so reads ending that way kept the hot path's
        statements from ever running prepared (a claim: 2.1 -> 1.1 ms)."""

        def once() -> T:
            with self.engine.connect() as conn:
                result = work(conn)
                conn.commit()
                return result

        return self.retried(once)

    def server_now(self) -> datetime:
        return self.read(dialects.now_sql)
