"""A runner's loop in a thread of the test, and waiting for its runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from runtrack import Ledger
from runtrack.runner import Runner


@contextmanager
def running(runner: Runner) -> Iterator[None]:
    """``runner.run_forever`` in a thread, stopped (and joined) at the end."""
    loop = threading.Thread(target=runner.run_forever, kwargs={"handle_signals": False})
    loop.start()
    try:
        yield
    finally:
        runner.stop()
        loop.join(30)
        assert not loop.is_alive()


def wait_until_done(ledger: Ledger, run_ids: list[int], seconds: float = 30) -> None:
    """Wait until none of ``run_ids`` is active; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(not ledger.get_run(i).is_active for i in run_ids):
            return
        time.sleep(0.02)
    raise AssertionError(f"runs {run_ids} not done: {[ledger.get_run(i) for i in run_ids]}")
