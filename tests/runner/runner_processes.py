"""Helpers of the process-level runner tests: start ``worker_app.py`` in real
processes and wait for what they write to the database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from runtrack import Ledger, RunRecord

APP = Path(__file__).with_name("worker_app.py")


class Workers:
    """Runner processes of one test; whatever is still alive at the end is killed."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        path = self.logs / f"worker-{len(self.processes)}.log"
        with path.open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen([sys.executable, str(APP), *args], stdout=log, stderr=log)
        self.processes.append(process)
        return process

    def log(self, n: int = 0) -> str:
        return (self.logs / f"worker-{n}.log").read_text()

    def all_logs(self) -> str:
        return "\n".join(self.log(n) for n in range(len(self.processes)))

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def wait_for_counting_run(ledger: Ledger, job: str, workers: Workers) -> RunRecord:
    """The job's active run, once a heartbeat has flushed some of its counters."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        active = ledger.active_runs(job)
        if active and active[0].counters.get("pages", 0) > 0:
            return active[0]
        time.sleep(0.05)
    raise AssertionError(f"the worker never started {job}:\n{workers.all_logs()}")
