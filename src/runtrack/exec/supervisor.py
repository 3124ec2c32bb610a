"""One run around one command: start the run, run the command, apply what it
reports, stop it when the run must stop, and finalize by how it ended.

- exit 0: ``success`` (``partial`` if it reported an error or an item error);
- any other exit: ``failed``, ``error_type`` ``exit_code`` or ``signal``, with
  the exit code, the signal and the last 50 lines of stderr in the details;
- a cancel request: SIGTERM, then SIGKILL after the ledger's cancel grace;
  the run ends ``cancelled``;
- the timeout: the same, and the run ends ``failed`` / ``timeout``.

SIGTERM and SIGINT sent to us are forwarded to the command (SIGINT only when
the terminal did not already send it; see :func:`terminal_sends_sigint`).
The heartbeat thread keeps the run alive while the command runs; if this
process dies without finalizing, the run is reaped like any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from runtrack.errors import InvalidInput, LeaseLost, RunCancelled, RuntrackError
from runtrack.exec.carried import ENV, carried_file
from runtrack.exec.child import Child, Event, Exit, terminal_sends_sigint
from runtrack.exec.protocol import Report
from runtrack.models import ItemStatus, OnPartial, RunStatus

if TYPE_CHECKING:
    from runtrack.ledger import Ledger
    from runtrack.run import Run

__all__ = ["ExecRequest", "child_environment", "execute"]

POLL = 0.1  # seconds between checks for a cancel request or the timeout
MAX_WARNINGS = 20  # malformed report lines warned about, one line each
#: Exit codes of a command that could not be started, as shells report them.
NOT_FOUND, NOT_EXECUTABLE = 127, 126


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """What ``runtrack exec`` was asked to run, and how to record it."""

    job: str
    argv: tuple[str, ...]
    provider: str | None = None
    params: dict[str, str] | None = None
    timeout: timedelta | None = None
    concurrency: int = 1
    triggered_by: str = "system"
    #: What a partial end does with the failed items (carry, hold, advance).
    on_partial: OnPartial = OnPartial.CARRY


@dataclass(slots=True)
class _Stop:
    """Why we stopped the command, and when SIGKILL follows SIGTERM."""

    why: str  # "cancelled", "timeout" or "lease_lost"
    message: str
    error_type: str
    kill_at: float
    killed: bool = False


@dataclass(slots=True)
class _Signals:
    """Signals received (set from a handler: it only appends)."""

    received: list[int] = field(default_factory=list)
    unsent: list[int] = field(default_factory=list)  # before the command started
    noted: int = 0


def _warn(text: str) -> None:
    sys.stderr.write(f"runtrack exec: {text}\n")
    sys.stderr.flush()


def execute(
    ledger: Ledger,
    request: ExecRequest,
    warn: Callable[[str], None] = _warn,
    *,
    run: Run | None = None,
) -> int:
    """Run the command in a new run of ``request.job`` (or in ``run``, started
    by the caller); returns the exit code a shell would report for it.
    Raises ``JobBusy`` (nothing was run) if the job has no free slot. Once
    the command has run, a failure to record its outcome is a warning: the
    exit code is still the command's."""
    if run is None:
        run = ledger.start_run(
            request.job,
            provider=request.provider,
            params=request.params or None,
            concurrency=request.concurrency,
            triggered_by=request.triggered_by,
            on_partial=request.on_partial,
        )
    return Supervisor(ledger, run, request, warn)()


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def child_environment(run: Run, base: Mapping[str, str], carried: str = "") -> dict[str, str]:
    """The command's environment: ours, plus the run's identity, window,
    previous checkpoint and the path of the file listing what its job owes
    (empty strings for none)."""
    checkpoint = run.previous_checkpoint
    return {
        **base,
        ENV: carried,
        "RUNTRACK_RUN_ID": str(run.id),
        "RUNTRACK_JOB": run.job,
        "RUNTRACK_WINDOW_START": _iso(run.window.start),
        "RUNTRACK_WINDOW_END": _iso(run.window.end),
        "RUNTRACK_CHECKPOINT": "" if checkpoint is None else json.dumps(checkpoint),
    }


class Supervisor:
    """Watches one command for one run (see the module's docstring)."""

    def __init__(
        self, ledger: Ledger, run: Run, request: ExecRequest, warn: Callable[[str], None]
    ) -> None:
        self._ledger = ledger
        self._run = run
        self._request = request
        self._warn = warn
        self._stop: _Stop | None = None
        self._signals = _Signals()
        self._errors_reported = False
        self._warnings = 0

    def __call__(self) -> int:
        with contextlib.ExitStack() as stack:
            try:  # what the job owes, handed to this run (removed at the end)
                path = stack.enter_context(carried_file(self._run))
            except BaseException as exc:  # the database or the disk: nothing ran
                with contextlib.suppress(Exception):
                    self._ledger.finish_run(self._run, RunStatus.FAILED, error=exc)
                raise
            return self._supervise(child_environment(self._run, os.environ, path))

    def _supervise(self, environment: dict[str, str]) -> int:
        child = Child(self._request.argv, environment)
        try:
            # Handlers first: a signal that arrives as the command starts is
            # passed on, not fatal to us.
            with self._forwarding(child):
                try:
                    child.start()
                except OSError as exc:
                    return self._not_started(exc)
                while self._signals.unsent:  # arrived before the command existed
                    child.send(self._signals.unsent.pop(0))
                ended = self._watch(child)
            child.drain()
            self._take_events(child, block=False)
            self._note_signals()  # one that came with the exit
        except BaseException as exc:  # a bug of ours: do not leave the command running
            child.send(signal.SIGKILL)
            with contextlib.suppress(Exception):
                self._ledger.finish_run(self._run, RunStatus.FAILED, error=exc)
            raise
        self._finish(ended, child)
        return ended.shell_code

    # -- watching ------------------------------------------------------------------

    def _watch(self, child: Child) -> Exit:
        started = time.monotonic()
        while True:
            ended = self._take_events(child, block=True)
            if ended is not None:
                return ended
            self._note_signals()
            self._stop_if_needed(child, time.monotonic() - started)

    def _take_events(self, child: Child, *, block: bool) -> Exit | None:
        """Apply the events waiting (waiting up to :data:`POLL` for a first
        one if ``block``); the exit, once it is among them."""
        try:
            event: Event | None = child.events.get(timeout=POLL) if block else None
        except queue.Empty:
            return None
        while True:
            if event is not None:
                if event.exit is not None:
                    return event.exit
                self._handle(event)
            try:
                event = child.events.get_nowait()
            except queue.Empty:
                return None

    def _handle(self, event: Event) -> None:
        if event.malformed is not None:
            self._malformed(event.malformed)
        elif event.report is not None and self._stop is None and not self._run.cancel_requested:
            # Once the run must stop, its handle refuses reports: they are dropped.
            try:
                apply(self._run, event.report)
            except InvalidInput as exc:
                self._malformed(str(exc))
            except RunCancelled:
                pass  # asked to stop since the check above: the next turn stops
            except RuntrackError as exc:  # a lost lease, the database away
                self._warn(f"a report was not recorded: {exc}")
            else:
                self._errors_reported = self._errors_reported or _is_error(event.report)

    def _malformed(self, problem: str) -> None:
        self._warnings += 1
        if self._warnings <= MAX_WARNINGS:
            self._warn(f"ignored a malformed ::runtrack line: {problem}")
        if self._warnings == MAX_WARNINGS:
            self._warn(f"({MAX_WARNINGS} malformed lines; the next ones pass without a warning)")

    def _stop_if_needed(self, child: Child, elapsed: float) -> None:
        now = time.monotonic()
        stop = self._stop
        if stop is None:
            stop = self._stop = self._stop_reason(elapsed, now)
            if stop is not None:
                self._warn(f"{stop.message}; sending SIGTERM to the command")
                child.send(signal.SIGTERM)
        elif not stop.killed and now >= stop.kill_at:
            self._warn("the command did not stop within the cancel grace; sending SIGKILL")
            child.send(signal.SIGKILL)
            stop.killed = True

    def _stop_reason(self, elapsed: float, now: float) -> _Stop | None:
        kill_at = now + self._ledger.cancel_grace.total_seconds()
        if self._run.cancel_requested:
            try:
                self._run.check_cancelled()
            except RunCancelled as cancel:
                message = f"run {self._run.id} was cancelled" + (
                    f" ({cancel.reason})" if cancel.reason else ""
                )
                return _Stop("cancelled", message, cancel.error_type, kill_at)
            except LeaseLost as lost:
                return _Stop("lease_lost", str(lost), "lease_lost", kill_at)
        timeout = self._request.timeout
        if timeout is not None and elapsed >= timeout.total_seconds():
            return _Stop("timeout", f"timed out after {_duration(timeout)}", "timeout", kill_at)
        return None

    # -- signals -------------------------------------------------------------------

    @contextlib.contextmanager
    def _forwarding(self, child: Child) -> Iterator[None]:
        """Forward SIGTERM and SIGINT to the command while it runs."""
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread may handle signals
            return
        sigint_from_terminal = terminal_sends_sigint()

        def forward(signum: int, frame: object) -> None:
            self._signals.received.append(signum)
            if signum == signal.SIGINT and sigint_from_terminal:
                return
            if not child.send(signum):
                self._signals.unsent.append(signum)

        wanted = [signal.SIGTERM]
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # ignored stays ignored
            wanted.append(signal.SIGINT)
        previous = {signum: signal.signal(signum, forward) for signum in wanted}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _note_signals(self) -> None:
        signals = self._signals
        while signals.noted < len(signals.received) and self._stop is None:
            name = signal.Signals(signals.received[signals.noted]).name
            signals.noted += 1
            with contextlib.suppress(RunCancelled, LeaseLost):
                self._run.note(f"runtrack exec received {name} and passed it to the command")

    # -- the end ---------------------------------------------------------------------

    def _finish(self, ended: Exit, child: Child) -> None:
        details: dict[str, Any] = {
            "exit_code": ended.code,
            "signal": None if ended.signal is None else _signal_name(ended.signal),
            "stderr_tail": child.stderr_tail.lines(),
        }
        stop = self._stop
        if stop is not None and stop.why == "lease_lost":
            self._warn(f"{stop.message}; nothing was recorded")
            return
        if stop is not None:
            status = RunStatus.CANCELLED if stop.why == "cancelled" else RunStatus.FAILED
            self._final(status, stop.message, stop.error_type, details)
        elif ended.code == 0:
            self._final(RunStatus.PARTIAL if self._errors_reported else RunStatus.SUCCESS)
        else:
            kind = "signal" if ended.signal is not None else "exit_code"
            self._final(RunStatus.FAILED, ended.describe(), kind, details)

    def _final(
        self,
        status: RunStatus,
        message: str | None = None,
        error_type: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        try:
            self._ledger.finish_run(
                self._run, status, error=message, error_type=error_type, error_details=details
            )
        except LeaseLost as lost:
            self._warn(f"{lost}; the command's outcome was not recorded")
        except RuntrackError as exc:  # the database stayed away past finalize_timeout
            self._warn(f"the command's outcome was not recorded ({exc}); the run will be reaped")

    def _not_started(self, exc: OSError) -> int:
        code = NOT_FOUND if isinstance(exc, FileNotFoundError) else NOT_EXECUTABLE
        message = f"cannot run {self._request.argv[0]!r}: {exc.strerror or exc}"
        self._warn(message)
        self._final(RunStatus.FAILED, message, "exit_code", {"exit_code": code, "signal": None})
        return code


def apply(run: Run, report: Report) -> None:
    """Apply one report to the run handle (raises ``InvalidInput`` if the
    handle refuses it, and ``RunCancelled``/``LeaseLost`` like any call)."""
    command, args = report.command, report.args
    if command == "count":
        run.count(*args)
    elif command == "set":
        run.set_counter(*args)
    elif command == "item":
        key, status, group, source = args
        run.item(key, status, group=group, source=source)
    elif command == "progress":
        done, total = args
        if total is not None:
            run.set_total(total)
        already = run.progress[0]
        if done < already:
            raise InvalidInput("progress", f"went back from {already} to {done}", f">= {already}")
        run.advance(done - already)
    elif command == "error":
        run.error(args[0])
    elif command == "note":
        run.note(args[0])
    elif command == "slice":
        run.failed_slice(*args)
    else:
        run.save_checkpoint(args[0])


def _is_error(report: Report) -> bool:
    return report.command in ("error", "slice") or (
        report.command == "item" and report.args[1] == ItemStatus.ERROR.value
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
