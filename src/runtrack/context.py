"""``with ledger.run(...)``, ``async with ledger.run(...)`` and ``@ledger.tracked``.

The synchronous block is the core. The async form runs the same enter and exit
in a worker thread (``asyncio.to_thread``) so that the database calls never
block the event loop; it is not a second copy of the logic.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from runtrack.errors import LeaseLost, RunCancelled
from runtrack.logs import run_fields
from runtrack.models import RunStatus
from runtrack.run import Run, _current

if TYPE_CHECKING:
    from runtrack.ledger import Ledger

__all__ = ["RunContext", "tracked"]

log = logging.getLogger("runtrack")
P = ParamSpec("P")
R = TypeVar("R")

# Leaving a block through these means the process is stopping, not that the
# job failed: the run ends cancelled and the exception goes on.
_STOPPING = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


class RunContext:
    """The object ``ledger.run(...)`` returns: enter it to start the run."""

    def __init__(self, ledger: Ledger, request: dict[str, Any]) -> None:
        self._ledger = ledger
        self._request = request
        self._run: Run | None = None
        self._token: Token[Run | None] | None = None

    @property
    def run(self) -> Run:
        if self._run is None:
            raise RuntimeError("the run has not started: enter the block first")
        return self._run

    def _bind(self, run: Run) -> Run:
        # The context variable is set on the caller's side (not in the worker
        # thread of the async form), so current_run() sees it in the block.
        self._run = run
        self._token = _current.set(run)
        return run

    def _unbind(self) -> Run:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        return self.run

    def __enter__(self) -> Run:
        return self._bind(self._ledger._open(self._request))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return complete(self._ledger, self._unbind(), exc)

    async def __aenter__(self) -> Run:
        return self._bind(await asyncio.to_thread(self._ledger._open, self._request))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return await asyncio.to_thread(complete, self._ledger, self._unbind(), exc)


def complete(ledger: Ledger, run: Run, exc: BaseException | None) -> bool:
    """Finalize ``run`` according to how its block ended. Returns True to
    swallow the exception (only ``RunCancelled``, which is an outcome)."""
    if isinstance(exc, LeaseLost):
        ledger._heartbeat.unregister(run)
        return False  # the run is not ours any more: write nothing
    if exc is None:
        status = RunStatus.PARTIAL if run._has_errors() else RunStatus.SUCCESS
        ledger._finalize(run, status)
        return False
    if isinstance(exc, RunCancelled):
        return _finalize_quietly(
            ledger, run, RunStatus.CANCELLED, exc.reason, exc.error_type, swallow=True
        )
    if isinstance(exc, _STOPPING):
        return _finalize_quietly(ledger, run, RunStatus.CANCELLED, exc, "shutdown", swallow=False)
    return _finalize_quietly(ledger, run, RunStatus.FAILED, exc, None, swallow=False)


def _finalize_quietly(
    ledger: Ledger,
    run: Run,
    status: RunStatus,
    error: BaseException | str | None,
    error_type: str | None,
    *,
    swallow: bool,
) -> bool:
    """Finalize while another exception is leaving the block: a failure to
    record it is logged, never allowed to replace the caller's exception."""
    try:
        ledger._finalize(run, status, error, error_type)
    except LeaseLost as lost:
        log.warning("%s", lost, extra=run_fields(run, lost.status))
    except Exception:
        log.exception(
            "could not finalize run %s; it will be reaped",
            run.id,
            extra=run_fields(run),
        )
    return swallow


def tracked(
    ledger: Ledger, job: str, options: dict[str, Any]
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        wants_run = "run" in inspect.signature(fn).parameters

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with ledger.run(job, **options) as run:
                    if wants_run:
                        kwargs["run"] = run
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with ledger.run(job, **options) as run:
                if wants_run:
                    kwargs["run"] = run
                return fn(*args, **kwargs)
            return None  # type: ignore[return-value]  # the run was cancelled

        return wrapper

    return decorate
