"""Celery: each task execution is one run, through Celery's signals.

``task_prerun`` and ``task_postrun`` fire in the process and thread that
execute the task (a prefork child, a thread of the threads pool, the solo
worker itself), so the run is opened and finalized there and
:func:`runtrack.current_run` works in the task body. ``task_revoked`` fires in
the worker's main process: with ``terminate=True`` the child is being killed,
so the run is ended ``cancelled`` by its id from there.

A retry (``self.retry(...)``) ends the run ``failed`` with the retry's reason;
the next execution of the same task id is a new run with ``attempt`` =
Celery's ``request.retries + 1`` and ``retry_of`` = the run it follows, like
the runner's retries. A cancel request reaches the task at its next call on
the run handle (``RunCancelled``, which Celery reports as the task's failure).
A worker killed with SIGKILL stops heartbeating: its runs are reaped.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from celery import Celery, signals
from celery.exceptions import Retry

from runtrack.errors import InvalidTransition, RuntrackError
from runtrack.ledger import Ledger
from runtrack.models import RunStatus
from runtrack.run import Run

__all__ = ["CeleryTracker", "track"]

log = logging.getLogger("runtrack.celery")

#: The task and its request (``task.request``) -> a job key or provider name.
Naming = str | Callable[[Any, Any], str | None] | None
#: Celery's task states that carry the task's exception in ``retval``.
_FAILED = {"FAILURE", "RETRY"}
#: How many of the job's latest runs are searched for the run a retry follows.
_RETRY_LOOKBACK = 50


class CeleryTracker:
    """Opens and finalizes the runs of one Celery app's tasks; made by :func:`track`."""

    def __init__(
        self,
        app: Celery,
        ledger: Ledger,
        *,
        job: Naming = None,
        provider: Naming = None,
        concurrency: int = 100,
    ) -> None:
        self.app = app
        self.ledger = ledger
        self.job = job
        self.provider = provider
        self.concurrency = concurrency
        # Task id -> its open run blocks, in the process that executes it: a
        # stack, as older Celery versions run an eager retry inside the
        # execution it retries.
        self._open: dict[str, list[AbstractContextManager[Run]]] = {}

    def connect(self) -> None:
        """Listen to Celery's task signals (they are global: other apps' tasks
        are told apart and ignored)."""
        signals.task_prerun.connect(self._prerun, weak=False)
        signals.task_postrun.connect(self._postrun, weak=False)
        signals.task_revoked.connect(self._revoked, weak=False)

    def disconnect(self) -> None:
        """Stop tracking (tasks running now keep their runs to the end)."""
        signals.task_prerun.disconnect(self._prerun)
        signals.task_postrun.disconnect(self._postrun)
        signals.task_revoked.disconnect(self._revoked)

    def job_key(self, task: Any, request: Any) -> str:
        """The job of one execution: ``job`` (a key, or called with the task and
        its request), by default the task's name."""
        return _name(self.job, task, request) or str(task.name)

    # -- the signals ---------------------------------------------------------

    def _prerun(self, sender: Any = None, task_id: str = "", **_: Any) -> None:
        task = sender
        if task is None or task.app is not self.app:
            return
        request = task.request
        job = self.job_key(task, request)
        retries = int(getattr(request, "retries", 0) or 0)
        try:
            block = self.ledger.run(
                job,
                provider=_name(self.provider, task, request),
                params={"celery_task_id": task_id},
                triggered_by="retry" if retries else "celery",
                concurrency=self.concurrency,
                attempt=retries + 1,
                retry_of=self._previous_attempt(job, task_id, retries),
            )
            block.__enter__()
        except RuntrackError as refused:  # JobBusy, an outage, a bad job key
            # The task still runs: a ledger problem must not stop the work.
            log.warning("celery task %s[%s] runs untracked: %s", task.name, task_id, refused)
            return
        self._open.setdefault(task_id, []).append(block)

    def _postrun(
        self,
        sender: Any = None,
        task_id: str = "",
        retval: Any = None,
        state: str | None = None,
        **_: Any,
    ) -> None:
        stack = self._open.get(task_id)
        if not stack:
            return
        block = stack.pop()
        if not stack:
            del self._open[task_id]
        error = _outcome(state, retval)
        block.__exit__(type(error) if error else None, error, _traceback(error))

    def _revoked(
        self,
        sender: Any = None,
        request: Any = None,
        terminated: bool = False,
        signum: int | None = None,
        **_: Any,
    ) -> None:
        task = sender
        if not terminated or task is None or task.app is not self.app or request is None:
            return
        task_id = getattr(request, "id", None)
        if task_id is None or task_id in self._open:
            return  # not started, or executing here: its own postrun ends it
        for record in self.ledger.active_runs(self.job_key(task, request)):
            if (record.params or {}).get("celery_task_id") != task_id:
                continue
            with contextlib.suppress(InvalidTransition):  # the dying task ended it first
                self.ledger.finish_run(
                    record.id,
                    RunStatus.CANCELLED,
                    error=f"celery task {task_id} revoked with terminate (signal {signum})",
                    error_type="revoked",
                )

    # -- retries ----------------------------------------------------------------

    def _previous_attempt(self, job: str, task_id: str, retries: int) -> int | None:
        """The run of this task id's previous execution (a retry's ``retry_of``)."""
        if not retries:
            return None
        page = self.ledger.list_runs(job=job, limit=_RETRY_LOOKBACK)
        for record in page.items:  # newest first
            if (record.params or {}).get("celery_task_id") == task_id:
                return record.id
        return None


def track(
    app: Celery,
    ledger: Ledger,
    *,
    job: Naming = None,
    provider: Naming = None,
    concurrency: int = 100,
) -> CeleryTracker:
    """Make each execution of ``app``'s tasks one run in ``ledger``.

    ``job`` and ``provider`` are strings, or functions of the task and its
    request (``task.request``) returning them; the job defaults to the task's
    name. ``concurrency`` is how many executions of one job may run at once
    (more are executed untracked, with a warning). Call it where the app is
    defined, so that the worker's main process and its children both listen.
    """
    tracker = CeleryTracker(app, ledger, job=job, provider=provider, concurrency=concurrency)
    tracker.connect()
    return tracker


def _name(naming: Naming, task: Any, request: Any) -> str | None:
    if naming is None or isinstance(naming, str):
        return naming
    return naming(task, request)


def _outcome(state: str | None, retval: Any) -> BaseException | None:
    """What ended the task: its exception (a retry's reason), or None."""
    if state in _FAILED and isinstance(retval, BaseException):
        if isinstance(retval, Retry) and isinstance(retval.exc, BaseException):
            return retval.exc
        return retval
    if state is None or state not in {"SUCCESS", "IGNORED", "REJECTED"}:
        # A BaseException (a terminate's SystemExit, RunCancelled) is leaving
        # the task: postrun is sent from Celery's ``finally`` while it does.
        return sys.exc_info()[1]
    return None


def _traceback(error: BaseException | None) -> TracebackType | None:
    return error.__traceback__ if error is not None else None
