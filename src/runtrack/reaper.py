"""Finalize runs whose worker is gone.

A run is stale when its last heartbeat (or, if it never heartbeated, its start)
is older than the stale threshold: it ends ``failed`` with ``heartbeat_timeout``,
or ``cancelled`` if a cancel was pending (someone wanted it stopped, and it
stopped). A running run whose cancel request is older than the cancel grace is
stuck: it ends ``cancelled`` with ``cancel_timeout``. A pending run that no
worker claimed within the pending TTL ends ``cancelled`` with ``expired``, once
no live worker serves its job (a busy one keeps it queued): which jobs live
workers serve is read from the worker rows, and only when a reap finds runs
past the TTL (heartbeats write the worker's own row, never a job's). Each is
finalized with a guarded update that re-checks the deadline (and that the job
is not among those served), so a run that heartbeats between the scan and the
update is left alone, and many reapers racing finalize each run once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from runtrack.models import ACTIVE, RunStatus
from runtrack.readable import clock
from runtrack.store.guards import (
    CancelPending,
    CancelRequestedBefore,
    Guard,
    QueuedBefore,
    StaleBefore,
)
from runtrack.store.history import HistoryStore
from runtrack.store.liveness import LivenessStore
from runtrack.store.values import Change, RunEnd
from runtrack.store.workers import WorkerStore
from runtrack.workers import live_since

__all__ = ["EXPIRED", "Reaper"]

log = logging.getLogger("runtrack.reaper")
#: ``error_type`` of a pending run that no worker claimed within the pending TTL.
EXPIRED = "expired"
CHUNK = 500  # runs finalized per transaction (a few statements each, see transition_many)


@dataclass(frozen=True, slots=True)
class Reaper:
    liveness: LivenessStore
    history: HistoryStore
    workers: WorkerStore
    stale_after: timedelta
    cancel_grace: timedelta
    #: Issue 17: how long a pending run waits for a worker before it expires.
    pending_ttl: timedelta = timedelta(hours=24)

    def reap(
        self, now: datetime, stale_after: timedelta | None = None, limit: int = 10_000
    ) -> list[int]:
        """Finalize every stale or stuck run; returns the ids this call finalized."""
        hb_cutoff = now - (stale_after or self.stale_after)
        cancel_cutoff = now - self.cancel_grace
        pending_cutoff = now - self.pending_ttl
        found = self.liveness.stale_runs(hb_cutoff, cancel_cutoff, limit, pending_cutoff)
        expiring = QueuedBefore(pending_cutoff)
        if any(reason == "expired" for _, reason, _, _ in found):
            expiring, found = self._unserved(found, expiring, now)
        changes = [
            self._expire(run_id, now, expiring)
            if reason == "expired"
            else self._change(run_id, reason, now, hb_cutoff, cancel_cutoff)
            for run_id, reason, _, _ in found
        ]
        reaped: list[int] = []
        for start in range(0, len(changes), CHUNK):
            reaped += self.liveness.transition_many(changes[start : start + CHUNK])
        self._log(reaped, changes)
        self.history.mark_maintenance("reap", now, {"reaped": len(reaped)})
        return reaped

    def _unserved(
        self, found: list[tuple[int, str, str, str]], expiring: QueuedBefore, now: datetime
    ) -> tuple[QueuedBefore, list[tuple[int, str, str, str]]]:
        """Keep, of the runs past the pending TTL, those whose job no live
        worker serves (live as the Workers page says, on the ledger's
        threshold): the served jobs are read from the worker rows (few), only
        when there are such runs, and the guard re-checks them in the UPDATE.
        A worker that registers between this read and the UPDATE may see a
        run of its job that waited the whole TTL expire: accepted, it is
        rare and the run was that old."""
        since = live_since(now, self.stale_after)
        served = self.workers.serving(since)
        if not served:
            return expiring, found
        kept = [f for f in found if f[1] != "expired" or f[3] not in served]
        return QueuedBefore(expiring.cutoff, served), kept

    @staticmethod
    def _log(reaped: list[int], changes: list[Change]) -> None:
        # One record per run so that log search by run_id finds its end; the
        # scan does not read job/provider, so those fields are absent here.
        done = set(reaped)
        for run_id, status, _, end, _ in changes:
            if run_id in done:
                log.warning(
                    "run %s reaped: %s (%s)",
                    run_id,
                    status.value,
                    end.error_type,
                    extra={"run_id": run_id, "status": status.value},
                )
        if reaped:
            log.info("reaped %d stale run(s): %s", len(reaped), reaped[:20])

    def reap_if_stale(self, run_ids: list[int], now: datetime) -> list[int]:
        """Finalize those of ``run_ids`` that are stale or stuck (a busy job's
        holders). Each holder gets every kind of change, in the order of
        :meth:`reap`; their guards let at most one apply."""
        hb_cutoff, cancel_cutoff = now - self.stale_after, now - self.cancel_grace
        changes = [
            self._change(i, reason, now, hb_cutoff, cancel_cutoff)
            for i in run_ids
            for reason in ("heartbeat+cancel", "heartbeat", "cancel")
        ]
        return self.liveness.transition_many(changes)

    def _expire(self, run_id: int, now: datetime, pending: QueuedBefore) -> Change:
        end = RunEnd(
            now,
            error_type=EXPIRED,
            error_message=f"no worker claimed it within the pending TTL ({self.pending_ttl})"
            " and no live worker serves its job",
        )
        guards: tuple[Guard, ...] = (pending,)
        return run_id, RunStatus.CANCELLED, frozenset({RunStatus.PENDING}), end, guards

    @staticmethod
    def _change(
        run_id: int, reason: str, now: datetime, hb_cutoff: datetime, cancel_cutoff: datetime
    ) -> Change:
        if reason == "cancel":
            end = RunEnd(
                now,
                error_type="cancel_timeout",
                error_message="cancel requested but the worker did not stop "
                "within the cancel grace; reaped",
            )
            where: tuple[Guard, ...] = (CancelRequestedBefore(cancel_cutoff),)
            return run_id, RunStatus.CANCELLED, frozenset({RunStatus.RUNNING}), end, where
        cancel = reason == "heartbeat+cancel"
        end = RunEnd(
            now,
            error_type="heartbeat_timeout",
            error_message=f"no heartbeat since before {clock(hb_cutoff)}; "
            "the worker is presumed dead" + (" (a cancel was pending)" if cancel else ""),
        )
        # The cancel guard keeps a request that lands after the scan from
        # being overwritten by "failed": that run waits for the next sweep.
        where = (StaleBefore(hb_cutoff), CancelPending(cancel))
        target = RunStatus.CANCELLED if cancel else RunStatus.FAILED
        return run_id, target, ACTIVE, end, where
