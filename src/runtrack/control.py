"""Controlling runs: cancel, reap, prune, provider pauses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from runtrack import inputs
from runtrack.errors import (
    InvalidInput,
    RunNotCancellable,
)
from runtrack.logs import run_fields
from runtrack.models import (
    PauseRecord,
    PruneResult,
    RunRecord,
    RunStatus,
)
from runtrack.queries import LedgerQueries
from runtrack.retention import prune
from runtrack.store.rows import naive

log = logging.getLogger("runtrack")


class LedgerControl(LedgerQueries):
    """The ledger's operator actions; each validates, then calls the store."""

    # -- control ---------------------------------------------------------------

    def cancel(self, run_id: int, *, by: str | None = None, reason: str | None = None) -> RunRecord:
        """Cancel a pending run now, or ask a running one to stop (its code
        gets ``RunCancelled`` within one heartbeat interval)."""
        inputs.positive_int("run_id", run_id)
        inputs.key("by", by, optional=True)
        inputs.text("reason", reason, optional=True)
        now = self.clock.now()
        values = {
            "finished_at": naive(now),
            "cancel_requested_at": naive(now),
            "cancel_requested_by": by,
            "cancel_reason": reason,
            "error_type": "cancelled",
            "error_message": reason,
        }
        if self.store.transition(run_id, RunStatus.CANCELLED, {RunStatus.PENDING}, values):
            self.events.finished(run_id)
            record = self.get_run(run_id)
            log.info("run %s cancelled before it started", run_id, extra=run_fields(record))
            return record
        if not self.store.request_cancel(run_id, now, by, reason):
            record = self.get_run(run_id)
            if record.status is not RunStatus.RUNNING:
                raise RunNotCancellable(run_id, record.status)
        local = self._heartbeat.get(run_id)
        if local is not None:  # same process: no need to wait for a heartbeat
            local._request_stop(reason)
        record = self.get_run(run_id)
        log.info("run %s asked to stop (by %s)", run_id, by, extra=run_fields(record))
        return record

    def reap(self, stale_after: timedelta | float | None = None) -> list[int]:
        """Finalize stale runs (``failed``/``heartbeat_timeout``) and runs stuck
        after a cancel (``cancelled``); returns the ids finalized by this call."""
        threshold = (
            None
            if stale_after is None
            else inputs.duration("stale_after", stale_after, limit=inputs.MAX_DURATION)
        )
        reaped = self._reaper.reap(self.clock.now(), threshold)
        for run_id in reaped:
            self.events.finished(run_id)
        return reaped

    def prune(
        self,
        older_than: timedelta | float | str | datetime,
        *,
        items_only: bool = False,
        batch_size: int = 1000,
        dry_run: bool = False,
        progress: Callable[[PruneResult], None] | None = None,
    ) -> PruneResult:
        """Delete terminal runs finished before the cutoff (a datetime, or an
        age like ``"90d"``), keeping each job's latest run and latest
        successful run and all job state."""
        now = self.clock.now()
        if isinstance(older_than, datetime):
            cutoff = inputs.timestamp("older_than", older_than, optional=False)
            assert cutoff is not None
            if cutoff > now:
                raise InvalidInput(
                    "older_than",
                    f"{cutoff.isoformat()} is in the future (now is {now.isoformat()})",
                    "a past datetime, or a positive age like 90d",
                )
        else:
            cutoff = now - inputs.duration("older_than", older_than, limit=inputs.MAX_DURATION)
        inputs.positive_int("batch_size", batch_size, limit=100_000)
        inputs.flag("items_only", items_only)
        inputs.flag("dry_run", dry_run)
        result = prune(
            self.store,
            cutoff,
            items_only=items_only,
            batch_size=batch_size,
            dry_run=dry_run,
            progress=progress,
        )
        if not dry_run:
            details = {"runs": result.runs, "items": result.items, "cutoff": cutoff.isoformat()}
            self.store.mark_maintenance("prune", self.clock.now(), details)
        return result

    def pause(
        self,
        provider: str,
        *,
        until: datetime | None = None,
        for_: timedelta | float | str | None = None,
        reason: str,
        by: str | None = None,
    ) -> PauseRecord:
        """Pause a provider: the runner skips its jobs until the pause ends."""
        return self._pauses.pause(
            provider, self.clock.now(), until=until, for_=for_, reason=reason, by=by
        )

    def resume(self, provider: str) -> bool:
        """End a provider's pause; returns whether one was active."""
        return self._pauses.resume(provider)

    def paused(self, provider: str) -> PauseRecord | None:
        return self._pauses.paused(provider, self.clock.now())

    def pauses(self) -> list[PauseRecord]:
        return self._pauses.active(self.clock.now())

    def last_maintenance(self, task: str) -> tuple[datetime, dict[str, Any]] | None:
        """When ``reap`` or ``prune`` last ran, and what it did."""
        return self.store.last_maintenance(inputs.key("task", task, limit=64))

    def heartbeat_now(self) -> None:
        """Run one heartbeat tick now (tests and shutdown paths)."""
        self._heartbeat.tick()
