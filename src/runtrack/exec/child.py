"""The command ``runtrack exec`` runs: spawned, listened to, signalled, reaped.

The child inherits stdin. Its stdout goes through a pipe and a
:class:`~runtrack.exec.protocol.StdoutFilter`: report lines become events,
everything else is written to our stdout as it arrives. Its stderr goes
through a pipe too, written to our stderr at once and remembered (the last
lines) for the run's error details. One thread per pipe, one that waits for
the exit; they all talk to the supervisor through one queue.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runtrack.exec.protocol import Malformed, Report, StdoutFilter, parse

__all__ = ["Child", "Event", "Exit", "Tail"]

#: Lines of stderr kept for the error details, and the length kept of each.
TAIL_LINES = 50
TAIL_WIDTH = 1000
#: How long the pipes may stay open after the command exited (a process it
#: left in the background may hold them) before we stop reading.
DRAIN = 1.0


@dataclass(frozen=True, slots=True)
class Exit:
    """How the command ended: its exit code, or the signal that killed it."""

    code: int | None
    signal: int | None

    @classmethod
    def of(cls, returncode: int) -> Exit:
        return cls(None, -returncode) if returncode < 0 else cls(returncode, None)

    @property
    def shell_code(self) -> int:
        """The code a shell reports: the exit code, or 128 + the signal."""
        return 128 + self.signal if self.signal is not None else self.code or 0

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"the command was killed by {name} ({self.signal})"
        return f"the command exited with code {self.code}"


@dataclass(frozen=True, slots=True)
class Event:
    """What the reading threads tell the supervisor: a report, a malformed
    report line (already passed through), or the exit."""

    report: Report | None = None
    malformed: str | None = None
    exit: Exit | None = None


class Tail:
    """The last :data:`TAIL_LINES` lines of a byte stream, as text."""

    def __init__(self, lines: int = TAIL_LINES) -> None:
        self._lines: deque[bytes] = deque(maxlen=lines)
        self._partial = b""

    def feed(self, data: bytes) -> None:
        parts = (self._partial + data).split(b"\n")
        self._partial = parts.pop()[-TAIL_WIDTH * 4 :]
        self._lines.extend(part[: TAIL_WIDTH * 4] for part in parts)

    def lines(self) -> list[str]:
        found = [*self._lines, *([self._partial] if self._partial else [])]
        text = (line.decode("utf-8", "replace").rstrip("\r")[:TAIL_WIDTH] for line in found)
        return list(text)[-self._lines.maxlen :] if self._lines.maxlen else []


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Child:
    """The running command. :meth:`start` raises ``OSError`` if it cannot be
    executed (not found, not executable)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.events: queue.Queue[Event] = queue.Queue()
        self.stderr_tail = Tail()
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        # stdin is inherited; SIGPIPE and the other signals Python changed are
        # restored to their defaults in the child (restore_signals).
        self._proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env
        )
        for target in (self._pump_stdout, self._pump_stderr, self._wait):
            thread = threading.Thread(target=target, name="runtrack-exec", daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def send(self, sig: int) -> bool:
        """Send ``sig`` to the command (not to processes it started); False
        if it has not started yet."""
        if self._proc is None:
            return False
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)
        return True

    def drain(self) -> None:
        """Wait (a bounded time) for the pipes to be read to their end."""
        for thread in self._threads[:2]:
            thread.join(DRAIN)

    # -- the reading threads ----------------------------------------------------

    def _pump_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        pipe = self._proc.stdout
        split = StdoutFilter()
        try:
            while data := os.read(pipe.fileno(), 65536):
                for piece in split.feed(data):
                    self._take(piece.data, piece.report)
            for piece in split.close():
                self._take(piece.data, piece.report)
        except BrokenPipeError:
            # Nobody reads our stdout any more (``| head``): the command learns
            # it as it would have without us, by SIGPIPE on its next write.
            pass
        finally:
            pipe.close()

    def _take(self, data: bytes, report: bool) -> None:
        if not report:
            _write_all(1, data)
            return
        try:
            self.events.put(Event(report=parse(data)))
        except Malformed as exc:
            _write_all(1, data)
            self.events.put(Event(malformed=str(exc)))

    def _pump_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        pipe, tee = self._proc.stderr, True
        try:
            while data := os.read(pipe.fileno(), 65536):
                self.stderr_tail.feed(data)
                if tee:
                    try:
                        _write_all(2, data)
                    except OSError:  # our stderr is gone: keep the tail anyway
                        tee = False
        finally:
            pipe.close()

    def _wait(self) -> None:
        assert self._proc is not None
        returncode = self._proc.wait()
        self.events.put(Event(exit=Exit.of(returncode)))


def terminal_sends_sigint() -> bool:
    """Whether a SIGINT we get most likely came from the terminal, which sent
    it to the command as well: we share a process group that is the
    terminal's foreground group. Then forwarding it would deliver it twice
    (and a second Ctrl-C means "stop now" to many programs)."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            return os.tcgetpgrp(fd) == os.getpgrp()
    return False
