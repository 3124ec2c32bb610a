"""Fixtures for the real-process tests: worker processes started with
``sys.executable tests/process/worker.py``, read line by line, always reaped."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtrack import Ledger

WORKER = Path(__file__).with_name("worker.py")


class Worker:
    """One worker process and the lines it has printed."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))

    def expect(self, word: str, timeout: float = 20.0) -> str:
        """Wait for the line starting with ``word``; return the rest of it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                pytest.fail(f"worker {self.pid} did not print {word!r}: {self.stderr()}")
            if line.split(" ", 1)[0] == word:
                return line.partition(" ")[2]

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=20)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    """Start a worker: ``spawn(mode, url, job, arg)``. Every worker is killed
    at the end of the test, whatever happened."""
    started: list[Worker] = []

    def start(*args: str) -> Worker:
        worker = Worker(*args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def reaper(db_url: str) -> Iterator[Ledger]:
    """The observer/reaper side: another process than the workers, with a
    stale threshold of six heartbeat intervals."""
    with Ledger(db_url, heartbeat_interval=0.05, stale_after=0.3) as opened:
        yield opened


def _wait_until(check: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """``wait_until(check, timeout=20)``: poll until ``check()`` is truthy."""
    return _wait_until
