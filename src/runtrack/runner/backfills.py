"""What the runner does differently for a backfill's window (issue 17).

A failed window is not retried in this process's memory: a retry of a
queued run is started directly, over the job's live window, so it would
fetch the wrong slice and move the watermark. The window stays failed (a
failure for good, not "retried") until ``ledger.resume_backfill`` queues it
again as the same window of its backfill.
"""

from __future__ import annotations

from runtrack.ledger import Ledger

__all__ = ["is_backfill_window"]


def is_backfill_window(ledger: Ledger, run_id: int) -> bool:
    """Whether run ``run_id`` is a window of a backfill (read on failures only)."""
    return ledger.get_run(run_id).backfill_id is not None
