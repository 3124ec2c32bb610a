"""The thread a runner's jobs run in, kept from one run to the next.

A job runs in a thread apart from the one supervising it (see
:mod:`runtrack.runner.execution` for why). Starting a thread per run cost
more than a short run itself (a queue of no-op runs spent a good part of its
time starting threads), so each supervisor keeps one job thread and hands it
run after run. A job that ignores its stop request keeps the thread it is
stuck in: the next run gets a new thread, and the old one ends once its job
returns. Each run starts in an empty context (:mod:`contextvars`), as it
would in a new thread.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["IDLE", "JobThread"]

log = logging.getLogger("runtrack.runner")

#: The name of a job thread waiting for its next run (while it runs one, it
#: is named ``runtrack-job:<job key>``).
IDLE = "runtrack-job-idle"

_Task = tuple[Callable[[], None], str, threading.Event]


class JobThread:
    """Runs the tasks given to :meth:`start` one after another in a daemon
    thread, a new one whenever the last task has not returned. Used by one
    supervising thread at a time."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._last: threading.Event | None = None

    def start(self, task: Callable[[], None], name: str) -> threading.Event:
        """Run ``task`` in the job thread, named ``name`` meanwhile; the
        event returned is set once ``task`` has returned."""
        stuck = self._last is not None and not self._last.is_set()
        if stuck or self._thread is None or not self._thread.is_alive():
            self.close()  # a stuck thread ends when its job returns
            self._tasks = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=_serve, args=(self._tasks,), name=name, daemon=True
            )
            self._thread.start()
        done = threading.Event()
        self._last = done
        self._tasks.put((task, name, done))
        return done

    def close(self) -> None:
        """Let the thread end once its current task (if any) returns."""
        if self._thread is not None:
            self._tasks.put(None)
            self._thread = None


def _serve(tasks: queue.SimpleQueue[_Task | None]) -> None:
    me = threading.current_thread()
    while (item := tasks.get()) is not None:
        task, name, done = item
        me.name = name
        try:
            contextvars.Context().run(task)
        except BaseException:  # the task records its own errors: a bug, or an interrupt
            log.exception("job thread task failed unexpectedly")
        finally:
            me.name = IDLE
            done.set()
