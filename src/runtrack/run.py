"""The run handle the job's code holds while it works.

Counters, progress, non-fatal errors and items accumulate in memory: an
increment is a dict update, never a database round trip. The ledger's
heartbeat thread flushes them every interval and the ledger writes them all at
finalization. Every interaction checks for an interrupt (a cancel request or
a lost lease) that the heartbeat thread may have set, and raises it.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from runtrack import inputs
from runtrack.carry import RunCarry
from runtrack.errors import DatabaseUnavailable, InvalidInput, LeaseLost, RunCancelled
from runtrack.handle import Finished, RunIdentity, read_counters, steps
from runtrack.items import BUFFERED_BATCHES, ItemBuffer, in_event_loop
from runtrack.models import TERMINAL, Carried, ItemStatus, RunStatus, Window
from runtrack.remarks import Remarks
from runtrack.store.values import NewItem, RunEnd

__all__ = [
    "Run",
    "RunOwner",
    "carry_if_any",
    "carry_of",
    "delivered_cancel",
    "end_recording",
    "ending_of",
    "has_errors",
    "items_of",
    "lose_lease",
    "mark_ending",
    "request_stop",
]

log = logging.getLogger("runtrack")
_MAX = inputs.MAX_INT


class RunOwner(Protocol):
    """What a :class:`Run` asks of the ledger part that started it
    (:class:`runtrack.lifecycle.Lifecycle`). The other direction, what the
    owner does with a handle, is the functions at the end of this module."""

    def save_checkpoint(self, run: Run, value: Any) -> None:
        """Store ``value`` as the run's checkpoint now (fenced by its lease)."""

    def flush_items(self, run: Run) -> None:
        """Write the run's buffered items now, in the calling thread."""

    def wake_flusher(self) -> None:
        """Have the heartbeat thread write full item buffers soon."""

    def owed(self, run: Run) -> Carried:
        """What the run's job owes from earlier runs (read once per run)."""


class Run(RunIdentity):
    """A live run. Created by the ledger; finalized by the ledger."""

    #: A guarded job's volume history as the start read it (see runtrack.volume).
    volume_history: dict[str, list[float]] | None = None

    def __init__(
        self,
        owner: RunOwner,
        *,
        id: int,
        uid: str,
        job: str,
        provider: str | None,
        attempt: int,
        params: dict[str, Any] | None,
        window: Window,
        previous_checkpoint: Any,
        resume_checkpoint: Any,
        started_at: datetime,
        item_batch_size: int,
        moves_watermark: bool = True,
        carry: RunCarry | None = None,
    ) -> None:
        super().__init__(id, uid, job, params, window, started_at, moves_watermark)
        self._owner = owner
        self.provider = provider
        self.attempt = attempt
        #: The schedule tick this run is for, when a runner started it.
        self.scheduled_for: datetime | None = None
        #: The job's checkpoint as of its last run that ended success/partial.
        self.previous_checkpoint = previous_checkpoint
        #: The last checkpoint of the failed run this one follows, to resume mid-way.
        self.resume_checkpoint = resume_checkpoint
        self._status = RunStatus.RUNNING
        self._checkpoint: Any = None
        self._checkpoint_lock = threading.Lock()
        self._ones: dict[str, itertools.count[int]] = {}  # increments of exactly 1
        self._sums: dict[str, int | float] = {}  # every other amount, and set values
        self._total: int | None = None
        self._advanced: itertools.count[int] | None = None  # advances of exactly 1
        self._done = 0  # every other advance
        self._remarks = Remarks()
        self._batch = item_batch_size
        self._lock = threading.Lock()
        self._items = ItemBuffer(self._lock, item_batch_size)
        self._interrupt: Callable[[], BaseException] | None = None
        self._carry = carry  # made on first use (see carry_of) when None
        #: The cancel this run's code was told of (raised by the handle), if any.
        self._delivered: RunCancelled | None = None

    # -- interrupts --------------------------------------------------------

    @property
    def status(self) -> RunStatus:
        """``running`` until the ledger finalizes the run."""
        return self._status

    @status.setter
    def status(self, value: RunStatus) -> None:
        # The guard of a finished run: every call on the handle checks
        # ``_interrupt`` already, so a final status makes each one raise
        # RunFinished instead of recording into a run that is history.
        self._status = value
        if value in TERMINAL:
            self._interrupt = Finished(self.id, value.value)

    def _check(self) -> None:
        if self._interrupt is not None:
            raise self._interrupt()

    def check_cancelled(self) -> None:
        """Raise :class:`RunCancelled` if a cancel request has been seen (for
        loops that call nothing else on the handle)."""
        self._check()

    @property
    def cancel_requested(self) -> bool:
        return self._interrupt is not None and self._status is RunStatus.RUNNING

    # -- counters and progress ----------------------------------------------
    #
    # Safe from any number of threads without a lock on the common path: an
    # increment of exactly 1 is one ``next()`` on the counter's
    # ``itertools.count``, a single step that no other thread can interleave
    # with (unlike ``d[k] = d.get(k, 0) + n``, which loses updates). Other
    # amounts, new names and ``set_counter`` take the handle's lock; readers
    # (the heartbeat, the finalization) add both parts up under it.

    def count(self, name: str, n: int | float = 1) -> None:
        """Add ``n`` to counter ``name`` (created at 0). Safe from any thread."""
        if self._interrupt is not None:
            raise self._interrupt()
        if n == 1 and type(n) is int:
            try:
                next(self._ones[name])
                return
            except (KeyError, TypeError):  # a new name (or not even hashable)
                name = inputs.key("counter name", name)
        elif type(name) is not str or name not in self._sums:
            name = inputs.key("counter name", name)
        self._add(name, n)

    def _add(self, name: str, n: object) -> None:
        # Bounded, so that every sum is a number every database stores (an
        # int of thousands of digits is not even a JSON number Python writes).
        if type(n) is not int or not -_MAX <= n <= _MAX:
            n = inputs.number("counter increment", n, limit=_MAX)
        with self._lock:
            self._check()  # the finalization may have read the counters since
            if n == 1 and type(n) is int:
                next(self._ones.setdefault(name, itertools.count()))
            else:
                self._sums[name] = self._sums.get(name, 0) + n

    def set_counter(self, name: str, value: int | float) -> None:
        """Set counter ``name`` to ``value``."""
        self._check()
        name = inputs.key("counter name", name)
        value = inputs.number("counter value", value, limit=inputs.MAX_INT)
        with self._lock:
            self._check()
            self._ones.pop(name, None)
            self._sums[name] = value

    @property
    def counters(self) -> dict[str, int | float]:
        with self._lock:
            sums, ones = dict(self._sums), list(self._ones.items())
        return read_counters(sums, ones)

    def set_total(self, n: int) -> None:
        """Declare how many units of work the run will process (for percent/ETA)."""
        self._check()
        self._total = inputs.non_negative_int("total", n)

    def advance(self, n: int = 1) -> None:
        """Mark ``n`` more units of work processed. Safe from any thread."""
        if self._interrupt is not None:
            raise self._interrupt()
        if n == 1 and type(n) is int:
            try:
                next(self._advanced)  # type: ignore[arg-type]
            except TypeError:  # the first advance of 1: its counter is made now
                with self._lock:
                    if self._advanced is None:
                        self._advanced = itertools.count()
                next(self._advanced)
            return
        n = inputs.non_negative_int("advance", n)
        with self._lock:
            done = self._done + n
            if done + self._advances() > inputs.MAX_INT:
                raise InvalidInput(
                    "advance", f"{done} processed in all", f"at most {inputs.MAX_INT}"
                )
            self._done = done

    @property
    def progress(self) -> tuple[int, int | None]:
        """(processed, total)."""
        return self._processed(), self._total

    def _processed(self) -> int:
        return min(self._done + self._advances(), inputs.MAX_INT)

    def _advances(self) -> int:
        return 0 if self._advanced is None else steps(self._advanced)

    # -- errors, notes, checkpoint ---------------------------------------------

    def error(self, message: str, **details: Any) -> None:
        """Record a non-fatal error: the run goes on and ends ``partial``."""
        self._check()
        if not isinstance(message, str) or not message:
            raise InvalidInput("message", "is empty or not a string", "a non-empty string")
        message = inputs.text("message", message)
        # A copy: the caller may change its objects later, even into ones
        # that cannot be stored, and the finalization must still write them.
        details = inputs.json_copy("error details", details)
        with self._lock:
            self._remarks.error(message, details)

    def note(self, text: str) -> None:
        """Attach a line of text to the run (the first 100 are kept)."""
        self._check()
        text = inputs.text("note", text)
        with self._lock:
            self._remarks.note(text)

    def save_checkpoint(self, value: Any) -> None:
        """Store a JSON cursor on the run now; it becomes the job's checkpoint
        when the run ends success or partial."""
        self._check()
        value = inputs.json_copy("checkpoint", value)  # later changes are not the cursor
        with self._checkpoint_lock:  # the last one saved is the one kept
            self._owner.save_checkpoint(self, value)
            self._checkpoint = value

    @property
    def checkpoint(self) -> Any:
        """The last checkpoint saved (or set) by this run: the job's checkpoint
        once the run ends success or partial."""
        return self._checkpoint

    @checkpoint.setter
    def checkpoint(self, value: Any) -> None:
        # Checked and copied like save_checkpoint: a value that cannot be
        # stored would otherwise only fail at the finalization.
        self._check()
        value = inputs.json_copy("checkpoint", value)
        with self._checkpoint_lock:  # not overwritten by a save_checkpoint begun before
            self._checkpoint = value

    # -- what failed, and what earlier runs left owed (runtrack/carry.py) -------

    def failed_slice(self, start: datetime, end: datetime, reason: str | None = None) -> None:
        """Record that ``[start, end)`` of the source could not be fetched (a
        page that failed: the slice from its first record to the next page's).
        The run ends ``partial``; under ``on_partial="carry"`` the slice is
        handed to the next runs until one fetches it."""
        self._check()
        carry_of(self).failed_slice(start, end, reason)

    @property
    def carried(self) -> Carried:
        """What the job owes from earlier runs, oldest first: ``.items``
        (record them again; success or not_found resolves one) and ``.slices``
        (fetch them; resolved when this run ends success or partial without
        reporting the same slice failed). Read from the database once."""
        self._check()
        return self._owner.owed(self)

    # -- items -----------------------------------------------------------------

    def item(
        self,
        key: str,
        status: str | ItemStatus,
        *,
        group: str | None = None,
        source: str | None = None,
        data: Any = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of one unit of work. Buffered and written in batches.

        A full buffer is written at once, in this thread; called from an event
        loop it is handed to the heartbeat thread instead, unless
        :attr:`max_buffered` items are waiting (then this call writes them).
        While the database is unavailable, items wait in memory for the
        heartbeat thread; only a full :attr:`max_buffered` raises
        ``DatabaseUnavailable``.
        """
        if self._interrupt is not None:
            raise self._interrupt()
        buffered = self._items.record(self._id, key, status, group, source, data, error)
        if buffered < self._batch:
            return
        if buffered < self.max_buffered and in_event_loop():
            self._owner.wake_flusher()
        elif buffered % self._batch == 0 or buffered >= self.max_buffered:
            self._flush_or_keep(buffered)

    def _flush_or_keep(self, buffered: int) -> None:
        """Write the buffer now. If the database is away, the items stay
        buffered for the heartbeat thread to retry and the run goes on (an
        outage must not fail a healthy run), unless :attr:`max_buffered` is
        reached: then the caller learns it, so memory stays bounded."""
        try:
            self._owner.flush_items(self)
        except DatabaseUnavailable as exc:
            if buffered >= self.max_buffered:
                raise
            log.warning(
                "run %s: %d item(s) kept in memory, the database is unavailable: %s",
                self.id,
                buffered,
                exc,
                extra={"run_id": self.id, "job": self.job, "provider": self.provider},
            )

    @property
    def max_buffered(self) -> int:
        """The most items held in memory before ``item()`` writes them itself."""
        return self._batch * BUFFERED_BATCHES

    @property
    def item_counts(self) -> dict[str, int]:
        return dict(self._items.tallies)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.job!r} {self.status}>"


# -- the owner's side ----------------------------------------------------------------
#
# What the ledger's parts (runtrack.lifecycle, runtrack.heartbeat, runtrack.control,
# the runner) do with a handle: functions of this module rather than methods, so
# that the handle a job's code holds offers only the job's side.


def request_stop(run: Run, reason: str | None, error_type: str = "cancelled") -> None:
    """Make the handle raise ``RunCancelled`` from its next call."""
    if run._interrupt is None:

        def interrupt() -> BaseException:
            # Remembered: code that swallows the cancel still ends cancelled.
            run._delivered = RunCancelled(run.id, reason, error_type)
            return run._delivered

        run._interrupt = interrupt


def lose_lease(run: Run, status: str | None) -> None:
    """Make the handle raise ``LeaseLost``: the run is no longer ours (an
    ended run's handle keeps saying RunFinished)."""
    if not isinstance(run._interrupt, Finished):
        run._interrupt = lambda: LeaseLost(run.id, status)


def items_of(run: Run) -> ItemBuffer:
    """The run's item buffer (the owner takes and writes its rows)."""
    return run._items


def delivered_cancel(run: Run) -> RunCancelled | None:
    """The cancel this run's code was told of (raised by the handle), if any."""
    return run._delivered


def has_errors(run: Run) -> bool:
    """Whether the run ends ``partial`` rather than ``success``."""
    errors = run._remarks.error_count > 0 or run._items.tallies[ItemStatus.ERROR] > 0
    return errors or (run._carry is not None and bool(run._carry.slices))


def end_recording(run: Run, now: Callable[[], datetime]) -> tuple[RunEnd, list[NewItem]]:
    """The finalization's one reading of the run: counters, progress, notes,
    errors, item tallies and the buffered items, taken together under the
    handle's lock so that what is stored agrees, then the time (``now()``).
    From the moment it starts the handle refuses every call (RunFinished)."""
    if not isinstance(run._interrupt, Finished):
        run._interrupt = Finished(run.id, "ending")
    # (A count of 1 passes the check without the lock: one in the few
    # bytecodes between its check and its step as this reads may still be
    # lost. Yielding the GIL here to close that window cost 0.1 ms a run.)
    with run._lock:
        counters = read_counters(run._sums, list(run._ones.items()))
        end = RunEnd(run.started_at, counters=counters, progress_total=run._total)  # stamped below
        end.progress_done = run._processed()
        rows = run._items.close(end)
        run._remarks.final_values(end)
    carry = run._carry
    if carry is not None and carry.slices:
        if end.error_message is None:
            end.error_message = f"{len(carry.slices)} failed slice(s)"
        end.add_details(**carry.details())
    end.finished_at = now()
    return end, rows


def mark_ending(run: Run, ending: str, paused_until: str | None = None) -> None:
    """How a failed attempt ends, set by the runner before it is finalized:
    ``"retried"`` or ``"rate_limited"`` (its provider paused until then)."""
    run._remarks.ending, run._remarks.paused_until = ending, paused_until


def ending_of(run: Run) -> str | None:
    return run._remarks.ending


def carry_of(run: Run) -> RunCarry:
    """What failed in the run and what its job owes (settled at its end)."""
    if run._carry is None:
        with run._lock:
            if run._carry is None:
                run._carry = RunCarry()
    return run._carry


def carry_if_any(run: Run) -> RunCarry | None:
    """The run's carry, ``None`` for a plain run of a job that owes nothing."""
    return run._carry
