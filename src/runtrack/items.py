"""A run's items: what ``run.item(...)`` accepts, checked once per item, and
the buffer that holds them until they are written.

The common case (a known status, a printable key, no error text) is checked
inline; anything else goes through :func:`checked_item` in full.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from runtrack import inputs
from runtrack.errors import RunFinished
from runtrack.models import ItemStatus
from runtrack.store.values import NewItem, RunEnd

__all__ = [
    "BUFFERED_BATCHES",
    "ITEM_STATUS",
    "MAX_ITEM_KEY",
    "ItemBuffer",
    "checked_extras",
    "checked_item",
    "in_event_loop",
]

MAX_ITEM_KEY = 512
#: In an event loop, full item batches wait for the heartbeat thread; this many
#: may pile up (a slow or unreachable database) before the caller blocks.
BUFFERED_BATCHES = 8
#: Item status values by value and by member (a StrEnum member is a str).
ITEM_STATUS: dict[str, str] = {status.value: status.value for status in ItemStatus}


def in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def checked_item(key: object, status: object, error: object) -> tuple[str, str, str | None]:
    """The full checks of an item's key, status and error text (printable
    means no control character and no lone surrogate, which is all that
    :func:`inputs.key` refuses beyond length and blankness): key, status
    value and error, as plain strings."""
    value = ITEM_STATUS.get(status) if isinstance(status, str) else None
    if value is None:
        value = inputs.choice("item status", status, ItemStatus).value
    text = None if error is None else inputs.text("item error", error)
    return inputs.key("item key", key, limit=MAX_ITEM_KEY), value, text


def checked_extras(group: object, source: object, data: object) -> tuple[Any, Any, Any]:
    """Group and source as plain strings; a copy of the data (the caller may
    change its objects before the item is written)."""
    return (
        inputs.key("item group", group, optional=True),
        inputs.key("item source", source, optional=True),
        inputs.json_copy("item data", data),
    )


_NO_TALLIES = {status.value: 0 for status in ItemStatus}


class _Closed(list[NewItem]):
    """The rows of a run whose finalization took its items: a call that
    passed the handle's check just before is refused here, under the lock,
    rather than buffered where nothing writes it (no work on the open path)."""

    def append(self, row: NewItem) -> None:
        raise RunFinished(row["run_id"], "ending")


class ItemBuffer:
    """A run's items waiting to be written, and the tallies of every item it
    recorded. Guarded by the run's lock, so that the final values read
    counters, items and errors in one consistent moment."""

    __slots__ = ("batch", "groups_found", "groups_seen", "lock", "rows", "tallies")

    def __init__(self, lock: threading.Lock, batch: int) -> None:
        self.lock = lock
        #: Items written together (a full batch is due).
        self.batch = batch
        self.rows: list[NewItem] = []
        # By status value (an ItemStatus member finds its value's entry).
        self.tallies: dict[str, int] = dict(_NO_TALLIES)
        self.groups_found: set[str] = set()
        self.groups_seen: set[str] = set()

    def __len__(self) -> int:
        return len(self.rows)

    def record(
        self,
        run_id: int,
        key: object,
        status: object,
        group: object,
        source: object,
        data: Any,
        error: object,
    ) -> int:
        """Check and buffer one item; returns how many are buffered now."""
        # Called once per item: the common case is checked inline, anything
        # else in full; the optional arguments only when given.
        value = ITEM_STATUS.get(status) if isinstance(status, str) else None
        if (
            value is None
            or error is not None
            or not (type(key) is str and 0 < len(key) <= MAX_ITEM_KEY and key.isprintable())
            or key.isspace()
        ):
            key, value, error = checked_item(key, status, error)
        if group is not None or source is not None or data is not None:
            group, source, data = checked_extras(group, source, data)
        row: NewItem = {
            "run_id": run_id,
            "key": key,
            "status": value,
            # Strings from checked_extras, or None: mypy sees the arguments.
            "group_key": group,  # type: ignore[typeddict-item]
            "source": source,  # type: ignore[typeddict-item]
            "data": data,
            "error": error,
        }
        with self.lock:
            self.rows.append(row)
            self.tallies[value] += 1
            if group is not None:
                self.groups_seen.add(group)  # type: ignore[arg-type]
                if value == ItemStatus.SUCCESS:
                    self.groups_found.add(group)  # type: ignore[arg-type]
            return len(self.rows)

    def due(self) -> bool:
        """Whether a full batch waits to be written."""
        return len(self.rows) >= self.batch

    def take(self) -> list[NewItem]:
        """The buffered rows, leaving the buffer empty."""
        with self.lock:
            taken = self.rows
            if type(taken) is _Closed:  # the finalization took them: stays closed
                return []
            self.rows = []
        return taken

    def close(self, end: RunEnd) -> list[NewItem]:
        """The final take: the buffered rows, with the tallies of every item
        recorded added to ``end`` in the same moment; from then on the
        buffer refuses items. The caller holds the lock."""
        taken, self.rows = self.rows, _Closed()
        self.final_values(end)
        return list(taken)

    def restore(self, rows: list[NewItem]) -> None:
        """Put back rows a write did not take, ahead of those recorded since."""
        with self.lock:
            self.rows[:0] = rows

    def final_values(self, end: RunEnd) -> None:
        """Add the item tallies and group counts to a run's end (the caller
        holds the lock)."""
        tallies = self.tallies  # by value: an enum member hashes in Python code
        end.items = {
            "success": tallies["success"],
            "not_found": tallies["not_found"],
            "skipped": tallies["skipped"],
            "error": tallies["error"],
        }
        if self.groups_seen:
            end.groups_found = len(self.groups_found)
            end.groups_missing = len(self.groups_seen - self.groups_found)
