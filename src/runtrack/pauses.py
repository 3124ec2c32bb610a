"""Provider pauses: "do not call this provider until T", shared by every
worker through the database."""

from __future__ import annotations

from datetime import datetime, timedelta

from runtrack import inputs
from runtrack.errors import InvalidInput, ProviderNotFound
from runtrack.models import PauseRecord
from runtrack.store.history import HistoryStore

__all__ = ["Pauses"]


class Pauses:
    def __init__(self, history: HistoryStore) -> None:
        self._history = history

    def pause(
        self,
        provider: str,
        now: datetime,
        *,
        until: datetime | None,
        for_: timedelta | float | str | None,
        reason: str,
        by: str | None,
        known: list[str] | None = None,
    ) -> PauseRecord:
        """Validate, then record the pause; with ``known``, a provider not in
        it is refused (after the other checks, so a bad body says so first)."""
        inputs.key("provider", provider)
        if (until is None) == (for_ is None):
            raise InvalidInput(
                "until/for_", "give exactly one of them", "until=<datetime> or for_=<duration>"
            )
        try:
            end = (
                (now + inputs.duration("for_", for_))
                if for_ is not None
                else (inputs.timestamp("until", until, optional=False))
            )
        except OverflowError:
            allowed = "a duration ending before year 9999"
            raise InvalidInput("for_", f"got {for_!r}", allowed) from None
        assert end is not None
        if end <= now:
            raise InvalidInput(
                "until", f"{end.isoformat()} is not in the future", "a time after now"
            )
        if not inputs.text("reason", reason).strip():
            raise InvalidInput("reason", "is empty", "a short text saying why")
        record = PauseRecord(provider, end, reason, now, inputs.key("by", by, optional=True))
        if known is not None and provider not in known:
            raise ProviderNotFound(provider, known)
        self._history.set_pause(record)
        return record

    def resume(self, provider: str) -> bool:
        return self._history.delete_pause(inputs.key("provider", provider))

    def paused(self, provider: str, now: datetime) -> PauseRecord | None:
        found = self._history.active_pauses(now, inputs.key("provider", provider))
        return found[0] if found else None

    def active(self, now: datetime) -> list[PauseRecord]:
        return self._history.active_pauses(now)
