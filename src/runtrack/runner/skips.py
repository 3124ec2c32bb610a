"""Ticks the runner skipped because the job, or its provider, was busy
(issue 21): told in the log and recorded on the job's row.

A runner that claimed a due tick (``Ledger.claim_tick`` moved the job's next
due time) and then finds every concurrency slot of the job held, or its
provider at its limit, skips the tick: it is not queued (DESIGN.md, guarantee
4). So that every claimed tick either ran or says why it did not, the skip is
counted on the job row with its time and reason (``Ledger.skip_tick``), which
``runtrack jobs``, the API and the job's page show.
"""

from __future__ import annotations

import logging

from runtrack.errors import JobBusy, ProviderBusy, RuntrackError
from runtrack.failures import capped
from runtrack.ledger import Ledger
from runtrack.queries import MAX_SKIP_REASON
from runtrack.runner.execution import Attempt

__all__ = ["busy_reason", "note_busy"]

log = logging.getLogger("runtrack.runner")

#: Run ids named in a reason; more are counted.
NAMED = 5


def busy_reason(error: BaseException | None) -> str:
    """One sentence saying why a start was refused, short enough for the job
    row: ``busy: 1 of 1 slot held by run 123``, ``provider acme at its limit
    of 2 running runs``."""
    if isinstance(error, JobBusy):
        ids, n = [str(i) for i in error.active_run_ids], error.concurrency
        slots = "slot" if n == 1 else "slots"
        if not ids:
            return f"busy: all {n} {slots} held"
        more = f" and {len(ids) - NAMED} more" if len(ids) > NAMED else ""
        named = ", ".join(ids[:NAMED]) + more
        runs = "run" if len(ids) == 1 else "runs"
        reason = f"busy: {len(ids)} of {n} {slots} held by {runs} {named}"
    elif isinstance(error, ProviderBusy):
        runs = "running run" if error.max_running == 1 else "running runs"
        reason = f"provider {error.provider} at its limit of {error.max_running} {runs}"
    else:
        reason = "busy"
    return capped(reason, MAX_SKIP_REASON)  # a provider's key may be 255 characters


def note_busy(ledger: Ledger, attempt: Attempt, error: BaseException | None) -> None:
    """Log a start the job's or provider's limit refused and, for a schedule
    tick, record the skip on the job row, then log it (a process killed in
    between leaves the record, not the line). A failure to record (the
    database is down) is logged and the runner goes on: the tick stays
    skipped."""
    key, reason = attempt.spec.key, busy_reason(error)
    if attempt.retry_of is not None or attempt.queued is not None:
        # Not a tick: a retry is dropped (the job's next tick runs again).
        what = f"retry of run {attempt.retry_of}" if attempt.retry_of else "queued run"
        log.info("job %s is busy: %s not started (%s)", key, what, reason)
        return
    try:
        ledger.skip_tick(key, reason=reason)
    except RuntrackError as exc:
        log.warning("job %s is busy: tick skipped (%s), not recorded: %s", key, reason, exc)
    except Exception:  # a bug must not stop the runner, nor go unseen
        log.exception("job %s is busy: tick skipped (%s), not recorded", key, reason)
    else:
        log.info("job %s is busy: tick skipped (%s)", key, reason)
