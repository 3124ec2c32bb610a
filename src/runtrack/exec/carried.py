"""What a command run by ``runtrack exec`` owes: the job's carried entries
handed to its run, written to a JSON file whose path the command gets in
``RUNTRACK_CARRIED`` (empty when nothing is owed).

A file rather than the environment: a job may owe 10,000 items, far past what
an environment holds. The file is the command's to read while it runs and is
removed when it exits. The run is handed the entries whether or not the
command reads them (each run counts an attempt on what it was offered).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runtrack.models import Carried
from runtrack.run import carry_if_any

if TYPE_CHECKING:
    from runtrack.run import Run

__all__ = ["ENV", "carried_document", "carried_file"]

ENV = "RUNTRACK_CARRIED"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def carried_document(carried: Carried) -> dict[str, Any]:
    """The file's content: ``items`` and ``slices``, oldest first."""
    return {
        "items": [
            {
                "id": item.id,
                "key": item.key,
                "group": item.group,
                "source": item.source,
                "data": item.data,
                "attempts": item.attempts,
                "first_run": item.first_run,
                "last_error": item.last_error,
            }
            for item in carried.items
        ],
        "slices": [
            {
                "id": piece.id,
                "start": _iso(piece.start),
                "end": _iso(piece.end),
                "attempts": piece.attempts,
                "first_run": piece.first_run,
                "reason": piece.reason,
            }
            for piece in carried.slices
        ],
    }


@contextlib.contextmanager
def carried_file(run: Run) -> Iterator[str]:
    """The path of a file listing what the run is handed, removed on exit;
    ``""`` (and no file, no query) when its job owes nothing."""
    carry = carry_if_any(run)
    carried = run.carried if carry is not None and carry.owes else Carried()
    if not carried:
        yield ""
        return
    fd, path = tempfile.mkstemp(prefix=f"runtrack-carried-{run.id}-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(carried_document(carried), out)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
