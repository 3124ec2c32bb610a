"""What follows a failed attempt that will be retried (issue 17).

A tick's retry waits in the runner's memory and starts the job's live window
again (the next tick would run it anyway; a newer finished run of the job
drops it). A queued run's retry repeats that run: once its delay has passed
it is queued again with the failed run's params and window (a backfill's
window stays a window of its backfill; see ``Ledger.retry_queued``), and any
runner serving the job claims it. A claimed run counts its retry budget as a
scheduled one does (:func:`budget_used`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from runtrack.errors import RunNotFound
from runtrack.ledger import Ledger
from runtrack.models import RATE_LIMITED, JobRecord
from runtrack.run import Run
from runtrack.runner.execution import Attempt

__all__ = ["budget_used", "next_attempt", "requeue", "superseded"]

log = logging.getLogger("runtrack.runner")


def next_attempt(attempt: Attempt, run_id: int, due: datetime, used: int) -> Attempt:
    """The retry of ``attempt``, whose run ``run_id`` failed, due at ``due``."""
    return Attempt(
        attempt.spec,
        due=due,
        tick=attempt.tick,
        attempt=attempt.attempt + 1,
        retry_of=run_id,
        used=used,
        requeue=run_id if attempt.queued is not None else None,
    )


def requeue(ledger: Ledger, retry: Attempt) -> None:
    """Queue the retry of a failed queued run again, now that it is due."""
    assert retry.requeue is not None
    queued = ledger.retry_queued(retry.requeue, retry_policy=retry.spec.retry.as_dict())
    if queued is None:
        log.info("retry of run %s dropped: its backfill was cancelled or resumed", retry.requeue)


def superseded(retry: Attempt, states: dict[str, JobRecord]) -> bool:
    """A tick's retry is dropped once a newer run of the job has finished
    (it covered the live window). A queued run's is not: a newer run need
    not have its params or its window."""
    if retry.requeue is not None:
        return False
    state = states.get(retry.spec.key)
    newer = state is not None and state.last_run_id not in (None, retry.retry_of)
    if newer:
        log.info("retry of run %s dropped: a newer run has finished", retry.retry_of)
    return newer


def budget_used(ledger: Ledger, run: Run) -> int:
    """The attempts of a claimed run's retry budget used, this one included,
    counted as a scheduled run's are: its ``attempt`` less the rate-limited
    attempts before it (a pause uses no attempt). A first attempt (a trigger,
    a re-run, a backfill's window) costs no read."""
    if run.attempt <= 1:
        return 1
    paused = 0
    before = ledger.get_run(run.id).retry_of
    for _ in range(run.attempt - 1):  # the chain of attempts, newest first
        if before is None:
            break
        try:
            record = ledger.get_run(before)
        except RunNotFound:  # pruned: what is left counts as attempts
            break
        paused += record.error_type == RATE_LIMITED
        before = record.retry_of
    return max(1, run.attempt - paused)
