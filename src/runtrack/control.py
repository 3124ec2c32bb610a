"""Controlling runs: cancel, reap, prune, provider pauses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from runtrack import inputs
from runtrack.clock import Clock
from runtrack.errors import (
    CarriedNotFound,
    InvalidInput,
    RunNotCancellable,
)
from runtrack.events import Events
from runtrack.heartbeat import Heartbeat
from runtrack.logs import run_fields
from runtrack.models import (
    PauseRecord,
    PruneResult,
    RunRecord,
    RunStatus,
)
from runtrack.pauses import Pauses
from runtrack.queries import Queries
from runtrack.reaper import Reaper
from runtrack.retention import prune
from runtrack.run import request_stop
from runtrack.store.carry_handout import CarryStore
from runtrack.store.history import HistoryStore
from runtrack.store.runs import RunStore
from runtrack.store.sessions import SessionStore
from runtrack.store.values import RunEnd
from runtrack.store.workers import WorkerStore
from runtrack.workers import forget_gone_workers

log = logging.getLogger("runtrack")


class Control:
    """The ledger's operator actions; each validates, then calls the store."""

    def __init__(
        self,
        runs: RunStore,
        history: HistoryStore,
        sessions: SessionStore,
        carry: CarryStore,
        workers: WorkerStore,
        clock: Clock,
        events: Events,
        heartbeat: Heartbeat,
        reaper: Reaper,
        pauses: Pauses,
        queries: Queries,
    ) -> None:
        self.runs = runs
        self.history = history
        self.sessions = sessions
        self.carry = carry
        self.workers = workers
        self.clock = clock
        self.events = events
        self.heartbeat = heartbeat
        self.reaper = reaper
        self.provider_pauses = pauses
        self.queries = queries

    def cancel(self, run_id: int, *, by: str | None = None, reason: str | None = None) -> RunRecord:
        """Cancel a pending run now, or ask a running one to stop (its code
        gets ``RunCancelled`` within one heartbeat interval)."""
        inputs.positive_int("run_id", run_id)
        inputs.key("by", by, optional=True)
        inputs.text("reason", reason, optional=True)
        now = self.clock.now()
        end = RunEnd(
            now,
            cancel_requested_at=now,
            cancel_requested_by=by,
            cancel_reason=reason,
            error_type="cancelled",
            error_message=reason,
        )
        if self.runs.transition(run_id, RunStatus.CANCELLED, {RunStatus.PENDING}, end):
            self.events.finished(run_id)
            record = self.queries.get_run(run_id)
            log.info("run %s cancelled before it started", run_id, extra=run_fields(record))
            return record
        if not self.runs.request_cancel(run_id, now, by, reason):
            record = self.queries.get_run(run_id)
            if record.status is not RunStatus.RUNNING:
                raise RunNotCancellable(run_id, record.status)
        local = self.heartbeat.get(run_id)
        if local is not None:  # same process: no need to wait for a heartbeat
            request_stop(local, reason)
        record = self.queries.get_run(run_id)
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
        reaped = self.reaper.reap(self.clock.now(), threshold)
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
            self.history,
            cutoff,
            items_only=items_only,
            batch_size=batch_size,
            dry_run=dry_run,
            progress=progress,
        )
        if not dry_run and not items_only:
            forget_gone_workers(self.workers, now, cutoff)  # issue 17
        if not dry_run:
            details = {"runs": result.runs, "items": result.items, "cutoff": cutoff.isoformat()}
            self.history.mark_maintenance("prune", self.clock.now(), details)
        return result

    def pause(
        self,
        provider: str,
        *,
        until: datetime | None = None,
        for_: timedelta | float | str | None = None,
        reason: str,
        by: str | None = None,
        create: bool = True,
    ) -> PauseRecord:
        """Pause a provider: the runner skips its jobs until the pause ends.

        ``create=False`` (what the CLI and the API do unless told ``--new`` /
        ``"create": true``) refuses a provider that no job uses and no pause
        names, listing the known ones: a typo must not look like a pause."""
        known = None if create else [p.name for p in self.queries.providers()]
        return self.provider_pauses.pause(
            provider, self.clock.now(), until=until, for_=for_, reason=reason, by=by, known=known
        )

    def resume(self, provider: str) -> bool:
        """End a provider's pause; returns whether one was active."""
        return self.provider_pauses.resume(provider)

    def paused(self, provider: str) -> PauseRecord | None:
        return self.provider_pauses.paused(provider, self.clock.now())

    def pauses(self) -> list[PauseRecord]:
        return self.provider_pauses.active(self.clock.now())

    def revoke_session(self, nonce: str, expires_at: datetime) -> None:
        """Sign a dashboard session out everywhere: its cookie (which carries
        ``nonce``) is refused by every server process until ``expires_at``."""
        inputs.key("nonce", nonce, limit=64)
        until = inputs.timestamp("expires_at", expires_at, optional=False)
        assert until is not None
        self.sessions.revoke_session(nonce, until, self.clock.now())

    def session_revoked(self, nonce: str) -> bool:
        """Whether the dashboard session ``nonce`` was signed out."""
        return self.sessions.session_revoked(inputs.key("nonce", nonce, limit=64))

    def last_maintenance(self, task: str) -> tuple[datetime, dict[str, Any]] | None:
        """When ``reap`` or ``prune`` last ran, and what it did."""
        return self.history.last_maintenance(inputs.key("task", task, limit=64))

    def forget_carried(self, job: str, entry_id: int, *, by: str | None = None) -> None:
        """Drop one entry the job owes (or gave up): for an operator who fixed
        it by hand. :class:`CarriedNotFound` if the job has no such entry."""
        key = inputs.key("job", job)
        inputs.positive_int("entry_id", entry_id)
        inputs.key("by", by, optional=True)
        if not self.carry.forget(key, entry_id):
            raise CarriedNotFound(key, entry_id)
        log.info(
            "carried entry %s of %s forgotten (by %s)",
            entry_id,
            key,
            by,
            extra={"job": key},
        )

    def heartbeat_now(self) -> None:
        """Run one heartbeat tick now (tests and shutdown paths)."""
        self.heartbeat.tick()
