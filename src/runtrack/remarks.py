"""A run's non-fatal errors and notes (``run.error(...)``, ``run.note(...)``):
the first 100 of each are kept, every error is counted, and the run's final
values summarize them."""

from __future__ import annotations

from typing import Any

from runtrack.store.values import RunEnd

__all__ = ["MAX_ERRORS_KEPT", "MAX_NOTES_KEPT", "Remarks"]

MAX_ERRORS_KEPT = 100
MAX_NOTES_KEPT = 100


class Remarks:
    """Guarded by the run's lock (the callers hold it)."""

    __slots__ = ("ending", "error_count", "errors", "notes", "paused_until")

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []
        self.error_count = 0
        self.notes: list[str] = []
        #: Set by the runner before a failed attempt is finalized: "retried"
        #: (a retry is scheduled) or "rate_limited" (its provider is paused).
        self.ending: str | None = None
        self.paused_until: str | None = None  # ISO time, with a rate limit

    def error(self, message: str, details: dict[str, Any]) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"message": message, **details})

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES_KEPT:
            self.notes.append(text)

    def final_values(self, end: RunEnd) -> None:
        """Add the notes and the error summary to a run's end."""
        end.notes = list(self.notes) or None
        count = self.error_count
        if count:
            errors = list(self.errors)
            first = errors[0]["message"]
            end.error_message = first if count == 1 else f"{count} errors; first: {first}"
            end.error_details = {"errors": errors, "error_count": count}
        if self.ending is not None:
            end.retried = True
            if self.paused_until is not None:
                end.add_details(paused_until=self.paused_until)
