"""Helpers shared by the reliability tests (run in the test process)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runtrack.store import dialects
from runtrack.store.schema import run_items, runs

WORKERS_FILE = Path(__file__).with_name("reliability_workers.py")


@dataclass(frozen=True)
class Sizes:
    """How much each reliability test does."""

    long: bool
    #: Crashes: SIGKILLs per backend, and workers alive at once.
    kills: int
    crash_workers: int
    #: Races per backend: in-process threads, and across processes.
    thread_races: int
    process_races: int
    #: Runner cycles of the two runners racing for one job.
    runner_race_seconds: float
    #: Load: processes x runs per process.
    load_processes: int
    load_runs: int
    #: State machine: hypothesis examples and steps per example.
    machine_examples: int
    machine_steps: int


DEFAULT = Sizes(
    long=False,
    kills=50,
    crash_workers=4,
    thread_races=150,
    process_races=60,
    runner_race_seconds=2.0,
    load_processes=4,
    load_runs=40,
    machine_examples=12,
    machine_steps=30,
)
LONG = Sizes(
    long=True,
    kills=200,
    crash_workers=6,
    thread_races=1000,
    process_races=1000,
    runner_race_seconds=15.0,
    load_processes=8,
    load_runs=500,
    machine_examples=150,
    machine_steps=60,
)


class Figures:
    """Counts per section and backend, added to by the tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, dict[str, dict[str, float]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(float))
        )
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, section: str, backend: str, **counts: float) -> None:
        with self._lock:
            for name, value in counts.items():
                self.counts[section][backend][name] += value

    def timed(self, section: str, seconds: float) -> None:
        with self._lock:
            self.seconds[section] += seconds

    def as_dict(self, sizes: Sizes | None) -> dict[str, Any]:
        sections = {
            section: {b: {k: _num(v) for k, v in c.items()} for b, c in backends.items()}
            for section, backends in sorted(self.counts.items())
        }
        return {
            "mode": "long" if sizes and sizes.long else "default",
            "sizes": asdict(sizes) if sizes else None,
            "totals": self.totals(),
            "sections": sections,
            "seconds": {k: round(v, 1) for k, v in sorted(self.seconds.items())},
        }

    def totals(self) -> dict[str, int | float]:
        """The headline figures, added up over sections and databases."""
        sums: dict[str, float] = dict.fromkeys(TOTALS.values(), 0.0)
        for section, backends in self.counts.items():
            for counts in backends.values():
                for name, value in counts.items():
                    total = TOTALS.get((section, name)) or TOTALS.get(("*", name))
                    if total:
                        sums[total] += value
        return {k: _num(v) for k, v in sums.items()}


#: (section or "*", figure) -> the total it adds to.
TOTALS = {
    ("*", "runs"): "runs",
    ("*", "kills"): "kills",
    ("*", "outages"): "outages",
    ("*", "races"): "races",
    ("*", "items"): "items",
    ("*", "lost"): "lost",
    ("*", "lost_runs"): "lost",
    ("*", "lost_items"): "lost_items",
    ("*", "lost_counter_updates"): "lost_counter_updates",
    ("*", "stuck"): "stuck",
    ("*", "double"): "double_run",
    ("*", "rewritten"): "rewritten",
    ("*", "errors_reaching_user_code"): "errors_reaching_user_code",
    ("bad_input", "calls"): "bad_input_calls",
    ("bad_input_cli", "calls"): "bad_input_calls",
    ("*", "problems"): "bad_input_problems",
}


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 3)


FIGURES = Figures()


def wait_for(check: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``check`` until it is truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout} s")
        time.sleep(0.02)


def item_counts(url: str) -> dict[int, int]:
    """Item rows per run id, read straight from the table."""
    engine = dialects.make_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(run_items.c.run_id, sa.func.count()).group_by(run_items.c.run_id)
            return {int(r[0]): int(r[1]) for r in conn.execute(query)}
    finally:
        engine.dispose()


def all_runs(url: str) -> list[sa.Row[tuple[object, ...]]]:
    """Every run row (id, job_key, status, counters, items_success, error_type,
    started_at, finished_at), read straight from the table."""
    engine = dialects.make_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(
                runs.c.id,
                runs.c.job_key,
                runs.c.status,
                runs.c.counters,
                runs.c.items_success,
                runs.c.error_type,
                runs.c.started_at,
                runs.c.finished_at,
            ).order_by(runs.c.id)
            return list(conn.execute(query))
    finally:
        engine.dispose()


class Worker:
    """A worker process forked by the zygote, and its channel."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.sock.setblocking(False)
        self._partial = b""
        self.lines: list[str] = []
        self.exited = False

    def poll(self, timeout: float = 0.0) -> list[str]:
        """Lines received since the last call (waiting up to ``timeout``)."""
        new: list[str] = []
        ready, _, _ = select.select([self.sock], [], [], timeout) if not self.exited else ([], 0, 0)
        while ready and not self.exited:
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.exited = True  # every copy of the worker's end is closed: it is gone
                break
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            new += [line.decode() for line in complete]
        self.lines += new
        return new

    def expect(self, word: str, timeout: float = 30.0) -> str:
        """The rest of the next line starting with ``word``."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.poll(0.05):
                head, _, rest = line.partition(" ")
                if head == word:
                    return rest
            if self.exited and not self.lines:
                pytest.fail(f"worker {self.pid} exited before saying {word!r}")
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.pid} did not say {word!r} within {timeout} s")

    def send(self, *parts: object) -> None:
        self.sock.setblocking(True)
        self.sock.sendall((" ".join(str(p) for p in parts) + "\n").encode())
        self.sock.setblocking(False)

    def kill(self) -> None:
        """SIGKILL, then wait until the process is gone (its channel closes)."""
        if not self.exited:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.wait_exit()

    def wait_exit(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.exited:
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.pid} still alive after {timeout} s")
            self.poll(0.05)
        self.sock.close()


class Zygote:
    """One process that imported runtrack once and forks workers on request
    (see reliability_workers.py)."""

    def __init__(self, log: Path) -> None:
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log = log
        with log.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKERS_FILE), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stderr=err,
            )
        theirs.close()
        self._lock = threading.Lock()

    def start(self, name: str, *args: object) -> Worker:
        mine, theirs = socket.socketpair()
        with self._lock:
            message = json.dumps([name, list(args)]).encode()
            socket.send_fds(self._control, [message], [theirs.fileno()])
            answer = self._control.recv(64)
        theirs.close()
        if not answer:
            pytest.fail(f"the zygote is gone: {self.log.read_text()[-2000:]}")
        return Worker(int(answer), mine)

    def close(self) -> None:
        self._control.close()
        self.process.wait(timeout=30)
