"""``with ledger.run(...)``, ``async with ledger.run(...)`` and ``@ledger.tracked``.

The synchronous block is the core. The async form runs the same enter and exit
in a worker thread so that the database calls never block the event loop; it
is not a second copy of the logic.

A task can be cancelled at either await (``task.cancel()``,
``asyncio.wait_for``, ``asyncio.timeout``), and the thread goes on: a start
whose caller is gone is finalized ``cancelled`` by the thread that made it
(or by the caller, if the thread had already handed the run over), and an
exit is shielded, so that the finalization it began always runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from runtrack.errors import InvalidInput, LeaseLost, RunCancelled
from runtrack.logs import run_fields
from runtrack.models import RunStatus
from runtrack.run import Run, has_errors

if TYPE_CHECKING:
    from runtrack.lifecycle import Lifecycle
    from runtrack.start import StartRequest

__all__ = ["CURRENT", "ClaimedContext", "RunContext", "current_run", "tracked"]

log = logging.getLogger("runtrack")
#: The run of the innermost block in this context.
CURRENT: ContextVar[Run | None] = ContextVar("runtrack_current_run", default=None)


def current_run() -> Run:
    """The run of the innermost ``ledger.run(...)`` block or tracked function."""
    run = CURRENT.get()
    if run is None:
        raise LookupError("no runtrack run is active in this context")
    return run


P = ParamSpec("P")
R = TypeVar("R")

# Leaving a block through these means the process is stopping, not that the
# job failed: the run ends cancelled and the exception goes on.
_STOPPING = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


class RunContext:
    """The object ``ledger.run(...)`` returns: enter it to start the run."""

    def __init__(self, lifecycle: Lifecycle, request: StartRequest) -> None:
        self._lifecycle = lifecycle
        self._request = request
        self._run: Run | None = None
        self._token: Token[Run | None] | None = None
        # The async start's hand-over between its worker thread and its caller.
        self._handover = threading.Lock()
        self._started: Run | None = None
        self._abandoned: BaseException | None = None

    @property
    def run(self) -> Run:
        if self._run is None:
            raise RuntimeError("the run has not started: enter the block first")
        return self._run

    def _bind(self, run: Run) -> Run:
        # The context variable is set on the caller's side (not in the worker
        # thread of the async form), so current_run() sees it in the block.
        self._run = run
        self._token = CURRENT.set(run)
        return run

    def _unbind(self) -> Run:
        if self._token is not None:
            CURRENT.reset(self._token)
            self._token = None
        return self.run

    def __enter__(self) -> Run:
        return self._bind(self._lifecycle.open(self._request))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return complete(self._lifecycle, self._unbind(), exc)

    async def __aenter__(self) -> Run:
        self._started = self._abandoned = None
        try:
            run = await asyncio.to_thread(self._start_in_thread)
        except BaseException as exc:  # cancelled (or timed out) while starting
            handed_over = self._abandon(exc)
            if handed_over is not None:  # the thread was done: the run is ours to end
                await _shielded(complete, self._lifecycle, handed_over, exc)
            raise
        return self._bind(run)

    def _start_in_thread(self) -> Run:
        """``_open`` in the worker thread; if the caller has gone meanwhile,
        the run is finalized here, as the block would have done."""
        run = self._lifecycle.open(self._request)
        with self._handover:
            gone = self._abandoned
            if gone is None:
                self._started = run
                return run
        complete(self._lifecycle, run, gone)
        return run

    def _abandon(self, why: BaseException) -> Run | None:
        """The caller stops waiting for the start. Returns the run if the
        thread had handed it over already (else the thread finalizes it)."""
        with self._handover:
            self._abandoned = why
            return self._started

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return await _shielded(complete, self._lifecycle, self._unbind(), exc)


async def _shielded(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn`` in a worker thread, to completion even if the awaiting task is
    cancelled meanwhile (or its loop is shutting down): the executor's future
    is shielded, so a job still queued is never cancelled, and it is not a
    task that the loop's shutdown would cancel."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.shield(loop.run_in_executor(None, call))


class ClaimedContext:
    """A block around a run this process claimed from the queue (issue 17):
    entering binds it as the current run, leaving finalizes it as
    ``ledger.run(...)`` does."""

    def __init__(self, lifecycle: Lifecycle, run: Run) -> None:
        self._lifecycle = lifecycle
        self._run = run
        self._token: Token[Run | None] | None = None

    def __enter__(self) -> Run:
        self._token = CURRENT.set(self._run)
        return self._run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._token is not None:
            CURRENT.reset(self._token)
            self._token = None
        return complete(self._lifecycle, self._run, exc)


def complete(lifecycle: Lifecycle, run: Run, exc: BaseException | None) -> bool:
    """Finalize ``run`` according to how its block ended. Returns True to
    swallow the exception (only ``RunCancelled``, which is an outcome)."""
    if isinstance(exc, LeaseLost):
        lifecycle.heartbeat.unregister(run)
        return False  # the run is not ours any more: write nothing
    if exc is None:
        status = RunStatus.PARTIAL if has_errors(run) else RunStatus.SUCCESS
        lifecycle.finalizer.finalize(run, status)
        return False
    if isinstance(exc, RunCancelled):
        return _finalize_quietly(
            lifecycle, run, RunStatus.CANCELLED, exc.reason, exc.error_type, swallow=True
        )
    if isinstance(exc, _STOPPING):
        return _finalize_quietly(
            lifecycle, run, RunStatus.CANCELLED, exc, "shutdown", swallow=False
        )
    return _finalize_quietly(lifecycle, run, RunStatus.FAILED, exc, None, swallow=False)


def _finalize_quietly(
    lifecycle: Lifecycle,
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
        lifecycle.finalizer.finalize(run, status, error, error_type)
    except LeaseLost as lost:
        log.warning("%s", lost, extra=run_fields(run, lost.status))
    except Exception:
        log.exception(
            "could not finalize run %s; it will be reaped",
            run.id,
            extra=run_fields(run),
        )
    return swallow


def _async_call(fn: object) -> bool:
    """Whether ``fn`` is an object whose ``__call__`` is an ``async def``."""
    return not inspect.isfunction(fn) and inspect.iscoroutinefunction(
        inspect.getattr_static(type(fn), "__call__", None)
    )


def tracked(start: Callable[[], RunContext]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator making each call of a function one run, entered through
    ``start()`` (a fresh ``ledger.run(...)`` per call)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            # Its body runs when iterated, after the call (and the run) ended.
            raise InvalidInput(
                "tracked",
                f"{getattr(fn, '__qualname__', 'the function')} is a generator function",
                "a function or an async function; track the loop that consumes "
                "the generator with `with ledger.run(...)` instead",
            )
        wants_run = "run" in inspect.signature(fn).parameters

        if inspect.iscoroutinefunction(fn) or _async_call(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with start() as run:
                    if wants_run:
                        kwargs["run"] = run
                    return await cast("Awaitable[Any]", fn(*args, **kwargs))

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with start() as run:
                if wants_run:
                    kwargs["run"] = run
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):  # its body would run after the run ended
                    getattr(result, "close", lambda: None)()  # never awaited: no warning
                    raise InvalidInput(
                        "tracked",
                        f"{getattr(fn, '__qualname__', 'the function')} returned an awaitable",
                        "decorate an `async def` function so the run lasts until it is done",
                    )
                return result
            return None  # type: ignore[return-value]  # the run was cancelled

        return wrapper

    return decorate
