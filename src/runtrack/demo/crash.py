"""A worker process that dies: the demo starts it, waits until its run has
heartbeated some progress, and kills it with SIGKILL (no ``finally``, no
``atexit``: the way an OOM kill or a lost machine ends a worker).

The worker is :mod:`runtrack.demo.dying_worker`, given the database in
``RUNTRACK_DATABASE_URL`` (never on the command line, where other users
could read a password).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

__all__ = ["Crash", "crash_worker"]


@dataclass(frozen=True, slots=True)
class Crash:
    """What happened to the killed worker's run."""

    run_id: int
    pid: int
    killed_after: float


def crash_worker(url: str, job: str, provider: str, heartbeat: float, *, work: float) -> Crash:
    """Start a worker process, let it work for ``work`` seconds, SIGKILL it."""
    env = dict(os.environ, RUNTRACK_DATABASE_URL=url)
    child = subprocess.Popen(
        [sys.executable, "-m", "runtrack.demo.dying_worker", job, provider, str(heartbeat)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the demo's worker process did not start a run: {line!r}")
        time.sleep(work)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    return Crash(int(line), child.pid, time.monotonic() - started)
