"""A job's queue as its page and ``runtrack trigger --wait`` show it (issue
17): each pending run and why it waits. The reasons are those a claim
checks, in its order: the provider's pause, the job's running runs (its
lease slots), the provider's limit, a backfill's ``max_parallel``, the runs
queued before it; past them, either no live worker serves the job, or one
does but has not claimed it yet (its slots are busy). Each pending run also
says when it expires (``pending_ttl`` after it was queued), or that it does
not while a live worker serves its job (live as the Workers page says).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runtrack.backfills import BackfillRecord
from runtrack.errors import BackfillNotFound
from runtrack.ledger import Ledger
from runtrack.models import RunRecord, RunStatus
from runtrack.readable import span
from runtrack.workers import WorkerState

__all__ = ["QUEUE_SHOWN", "Waiting", "queue_of"]

#: Pending runs listed on a job's page.
QUEUE_SHOWN = 50


@dataclass(frozen=True, slots=True)
class Waiting:
    """One queued run, why it waits, and when it expires unclaimed."""

    run: RunRecord
    why: str
    #: ``None``: it does not expire while a live worker serves its job.
    expires_at: datetime | None
    #: What holds it, in a word that stays while the sentence's figures
    #: change: paused, provider_limit, backfill_limit, behind, busy,
    #: no_free_slot or no_worker.
    cause: str = ""


def queue_of(ledger: Ledger, job: str, provider: str | None, now: datetime) -> list[Waiting]:
    """The job's pending runs in claim order (priority, then age), each with
    the first thing a claim would stop at."""
    listed = ledger.list_runs(job=job, status=[RunStatus.PENDING], limit=QUEUE_SHOWN).items
    if not listed:
        return []
    # Claim order: manual first, backfill windows last (runs.priority), then age.
    pending = sorted(listed, key=lambda r: (r.backfill_id is not None, r.id))
    running = ledger.count_runs(job=job, status=[RunStatus.RUNNING])
    pause = ledger.paused(provider) if provider else None
    limit = ledger.provider_limits().get(provider or "")
    at_limit = (
        limit is not None
        and ledger.count_runs(provider=provider, status=[RunStatus.RUNNING]) >= limit
    )
    served = any(
        w.state is WorkerState.LIVE and any(j.key == job for j in w.jobs) for w in ledger.workers()
    )
    backfills: dict[int, BackfillRecord | None] = {}
    found: list[Waiting] = []
    for ahead, run in enumerate(pending):
        if pause is not None:
            cause, why = (
                "paused",
                f"provider {provider} is paused for {span(pause.until - now)} more",
            )
        elif at_limit:
            cause, why = (
                "provider_limit",
                f"provider {provider} is at its limit of {limit} running run(s)",
            )
        elif (capped := _capped(ledger, run, backfills)) is not None:
            cause, why = "backfill_limit", capped
        elif ahead:
            cause, why = "behind", f"behind {ahead} queued run(s) of this job"
        elif running:
            cause, why = "busy", f"the job is busy: {running} run(s) running hold its slots"
        elif served:
            cause, why = "no_free_slot", "waiting for a free slot of a live worker serving this job"
        else:
            cause = "no_worker"
            why = "no live worker serves this job: start a runner with this job registered"
        expires = None if served else run.created_at + ledger.pending_ttl
        found.append(Waiting(run, why, expires, cause))
    return found


def _capped(ledger: Ledger, run: RunRecord, seen: dict[int, BackfillRecord | None]) -> str | None:
    """Why a backfill's window waits for its backfill's ``max_parallel``."""
    if run.backfill_id is None:
        return None
    if run.backfill_id not in seen:
        try:
            seen[run.backfill_id] = ledger.get_backfill(run.backfill_id)
        except BackfillNotFound:
            seen[run.backfill_id] = None
    record = seen[run.backfill_id]
    if record is None or record.max_parallel is None:
        return None
    if record.progress.running < record.max_parallel:
        return None
    return f"backfill {record.id} has {record.progress.running} of its max_parallel running"
