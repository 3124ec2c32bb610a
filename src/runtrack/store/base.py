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

from runtrack.errors import DatabaseUnavailable
from runtrack.store import dialects
from runtrack.store.prepared import Prepared, RawConnection, raw_transaction

T = TypeVar("T")


class StoreBase:
    """One engine, and the transactions every part of the store runs in."""

    def __init__(self, engine: Engine, *, retry_seconds: float = 5.0) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._retry_seconds = retry_seconds
        self._prepared: dict[Any, Prepared] = {}

    # -- transactions ---------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise
        except DBAPIError as exc:
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

    def _retried(self, once: Callable[[], T]) -> T:
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

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction, retried whole on lock
        contention, deadlocks and dropped connections."""

        def once() -> T:
            with self.engine.connect() as conn:
                conn.execution_options(**{dialects.IMMEDIATE: True})
                with conn.begin():
                    return work(conn)

        return self._retried(once)

    def write_prepared(self, work: Callable[[RawConnection], T]) -> T:
        """:meth:`write` for the hot path: ``work`` may execute only long-lived
        statements, which run prepared on the driver's connection."""
        return self._retried(lambda: raw_transaction(self.engine, self._prepared, work))

    def read(self, work: Callable[[Connection], T]) -> T:
        def once() -> T:
            with self.engine.connect() as conn:
                return work(conn)

        return self._retried(once)

    def server_now(self) -> datetime:
        return self.read(dialects.now_sql)
