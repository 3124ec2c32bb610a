"""The run handle the job's code holds while it works.

Counters, progress, non-fatal errors and items accumulate in memory: an
increment is a dict update, never a database round trip. The ledger's
heartbeat thread flushes them every interval and the ledger writes them all at
finalization. Every interaction checks for an interrupt (a cancel request or
a lost lease) that the heartbeat thread may have set, and raises it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runtrack import inputs
from runtrack.errors import DatabaseUnavailable, InvalidInput, LeaseLost, RunCancelled
from runtrack.models import ItemStatus, RunStatus, Window

if TYPE_CHECKING:
    from runtrack.lifecycle import RunLifecycle

__all__ = ["Run", "current_run"]

MAX_ERRORS_KEPT = 100
MAX_NOTES_KEPT = 100
MAX_ITEM_KEY = 512
#: In an event loop, full item batches wait for the heartbeat thread; this many
#: may pile up (a slow or unreachable database) before the caller blocks.
BUFFERED_BATCHES = 8

#: Item status values by value and by member (a StrEnum member is a str).
_ITEM_STATUS: dict[str, str] = {status.value: status.value for status in ItemStatus}
_current: ContextVar[Run | None] = ContextVar("runtrack_current_run", default=None)
log = logging.getLogger("runtrack")


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def current_run() -> Run:
    """The run of the innermost ``ledger.run(...)`` block or tracked function."""
    run = _current.get()
    if run is None:
        raise LookupError("no runtrack run is active in this context")
    return run


def _checked_item(key: object, status: object, error: object) -> str:
    """The full checks of an item's key, status and error text (printable
    means no control character and no lone surrogate, which is all that
    :func:`inputs.key` refuses beyond length and blankness); its status value."""
    value = _ITEM_STATUS.get(status) if isinstance(status, str) else None
    if value is None:
        value = inputs.choice("item status", status, ItemStatus).value
    if error is not None:
        inputs.text("item error", error)
    inputs.key("item key", key, limit=MAX_ITEM_KEY)
    return value


def _check_item_extras(group: object, source: object, data: object) -> None:
    if group is not None:
        inputs.key("item group", group)
    if source is not None:
        inputs.key("item source", source)
    if data is not None:
        inputs.json_value("item data", data)


class Run:
    """A live run. Created by the ledger; finalized by the ledger."""

    def __init__(
        self,
        ledger: RunLifecycle,
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
    ) -> None:
        self._ledger = ledger
        self.id = id
        self.uid = uid
        self.job = job
        self.provider = provider
        self.attempt = attempt
        self.params = params
        self.window = window
        #: Whether ending success/partial moves the job's watermark to window.end.
        self.moves_watermark = moves_watermark
        self.started_at = started_at
        #: The schedule tick this run is for, when a runner started it.
        self.scheduled_for: datetime | None = None
        #: The job's checkpoint as of its last run that ended success/partial.
        self.previous_checkpoint = previous_checkpoint
        #: The last checkpoint of the failed run this one follows, to resume mid-way.
        self.resume_checkpoint = resume_checkpoint
        self.status = RunStatus.RUNNING
        self.checkpoint: Any = None
        self._counters: dict[str, int | float] = {}
        self._total: int | None = None
        self._done = 0
        self._errors: list[dict[str, Any]] = []
        self._error_count = 0
        self._notes: list[str] = []
        self._items: list[dict[str, Any]] = []
        # By status value (an ItemStatus member finds its value's entry).
        self._tallies: dict[str, int] = {status.value: 0 for status in ItemStatus}
        self._groups_found: set[str] = set()
        self._groups_seen: set[str] = set()
        self._batch = item_batch_size
        self._lock = threading.Lock()
        self._interrupt: Callable[[], BaseException] | None = None

    # -- interrupts --------------------------------------------------------

    def _check(self) -> None:
        if self._interrupt is not None:
            raise self._interrupt()

    def check_cancelled(self) -> None:
        """Raise :class:`RunCancelled` if a cancel request has been seen (for
        loops that call nothing else on the handle)."""
        self._check()

    def _request_stop(self, reason: str | None, error_type: str = "cancelled") -> None:
        if self._interrupt is None:
            self._interrupt = lambda: RunCancelled(self.id, reason, error_type)

    def _lose_lease(self, status: str | None) -> None:
        self._interrupt = lambda: LeaseLost(self.id, status)

    @property
    def cancel_requested(self) -> bool:
        return self._interrupt is not None

    # -- counters and progress ----------------------------------------------

    def count(self, name: str, n: int | float = 1) -> None:
        """Add ``n`` to counter ``name`` (created at 0)."""
        if self._interrupt is not None:
            raise self._interrupt()
        counters = self._counters
        if type(name) is not str or name not in counters:  # a list is not even hashable
            inputs.key("counter name", name)
        if type(n) is not int:
            inputs.number("counter increment", n)
        counters[name] = counters.get(name, 0) + n

    def set_counter(self, name: str, value: int | float) -> None:
        """Set counter ``name`` to ``value``."""
        self._check()
        inputs.key("counter name", name)
        self._counters[name] = inputs.number("counter value", value)

    @property
    def counters(self) -> dict[str, int | float]:
        return dict(self._counters)

    def set_total(self, n: int) -> None:
        """Declare how many units of work the run will process (for percent/ETA)."""
        self._check()
        self._total = inputs.non_negative_int("total", n)

    def advance(self, n: int = 1) -> None:
        """Mark ``n`` more units of work processed."""
        if self._interrupt is not None:
            raise self._interrupt()
        done = self._done + inputs.non_negative_int("advance", n)
        if done > inputs.MAX_INT:
            raise InvalidInput("advance", f"{done} processed in all", f"at most {inputs.MAX_INT}")
        self._done = done

    @property
    def progress(self) -> tuple[int, int | None]:
        """(processed, total)."""
        return self._done, self._total

    # -- errors, notes, checkpoint ---------------------------------------------

    def error(self, message: str, **details: Any) -> None:
        """Record a non-fatal error: the run goes on and ends ``partial``."""
        self._check()
        if not isinstance(message, str) or not message:
            raise InvalidInput("message", "is empty or not a string", "a non-empty string")
        inputs.text("message", message)
        inputs.json_value("error details", details)
        with self._lock:
            self._error_count += 1
            if len(self._errors) < MAX_ERRORS_KEPT:
                self._errors.append({"message": message, **details})

    def note(self, text: str) -> None:
        """Attach a line of text to the run (the first 100 are kept)."""
        self._check()
        inputs.text("note", text)
        if len(self._notes) < MAX_NOTES_KEPT:
            self._notes.append(text)

    def save_checkpoint(self, value: Any) -> None:
        """Store a JSON cursor on the run now; it becomes the job's checkpoint
        when the run ends success or partial."""
        self._check()
        inputs.json_value("checkpoint", value)
        self._ledger._save_checkpoint(self, value)
        self.checkpoint = value

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
        # Called once per item: the common case (a known status, a printable
        # key, no error text) is checked inline, anything else in full; the
        # optional arguments only when given.
        value = _ITEM_STATUS.get(status) if isinstance(status, str) else None
        if (
            value is None
            or error is not None
            or not (type(key) is str and 0 < len(key) <= MAX_ITEM_KEY and key.isprintable())
            or key.isspace()
        ):
            value = _checked_item(key, status, error)
        if group is not None or source is not None or data is not None:
            _check_item_extras(group, source, data)
        row = {
            "run_id": self.id,
            "key": key,
            "status": value,
            "group_key": group,
            "source": source,
            "data": data,
            "error": error,
        }
        with self._lock:
            self._items.append(row)
            buffered = len(self._items)
            self._tallies[value] += 1
            if group is not None:
                self._groups_seen.add(group)
                if value == ItemStatus.SUCCESS:
                    self._groups_found.add(group)
        if buffered < self._batch:
            return
        if buffered < self.max_buffered and _in_event_loop():
            self._ledger._heartbeat.wake()
        elif buffered % self._batch == 0 or buffered >= self.max_buffered:
            self._flush_or_keep(buffered)

    def _flush_or_keep(self, buffered: int) -> None:
        """Write the buffer now. If the database is away, the items stay
        buffered for the heartbeat thread to retry and the run goes on (an
        outage must not fail a healthy run), unless :attr:`max_buffered` is
        reached: then the caller learns it, so memory stays bounded."""
        try:
            self._ledger._flush_items(self)
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

    def _flush_due(self) -> bool:
        return len(self._items) >= self._batch

    def _take_items(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self._items = self._items, []
        return taken

    def _restore_items(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._items[:0] = rows

    @property
    def item_counts(self) -> dict[str, int]:
        return dict(self._tallies)

    # -- what the ledger writes ----------------------------------------------------

    def _has_errors(self) -> bool:
        return self._error_count > 0 or self._tallies[ItemStatus.ERROR] > 0

    def _beat(self) -> dict[str, Any]:
        """This run's row of a batched heartbeat."""
        return {
            "b_id": self.id,
            "b_uid": self.uid,
            "b_counters": dict(self._counters),
            "b_total": self._total,
            "b_done": self._done,
        }

    def _final_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "counters": dict(self._counters),
            "progress_total": self._total,
            "progress_done": self._done,
            "notes": list(self._notes) or None,
            "items_success": self._tallies[ItemStatus.SUCCESS],
            "items_not_found": self._tallies[ItemStatus.NOT_FOUND],
            "items_skipped": self._tallies[ItemStatus.SKIPPED],
            "items_error": self._tallies[ItemStatus.ERROR],
        }
        if self._groups_seen:
            values["groups_found"] = len(self._groups_found)
            values["groups_missing"] = len(self._groups_seen - self._groups_found)
        if self._error_count:
            first = self._errors[0]["message"]
            values["error_message"] = (
                first if self._error_count == 1 else f"{self._error_count} errors; first: {first}"
            )
            values["error_details"] = {"errors": self._errors, "error_count": self._error_count}
        return values

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.job!r} {self.status}>"
