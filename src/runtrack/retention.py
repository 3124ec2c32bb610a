"""Retention: delete old history in short batches, never the runs that the
ledger still needs (active runs, each job's latest run and latest successful
run) and never job state, so pruning cannot reset incremental fetching.

The next run's window starts at the job's watermark, which lives in job state,
not in any run row: deleting runs cannot move it.

Why a batch chosen in one transaction is safe to delete in the next: a job's
"latest run" pointers only ever move to the run being finalized, in the same
transaction, and never backwards. A run that was already terminal when the
batch was chosen can therefore never become one a job points at, and runs
that are still active are not chosen at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from runtrack.models import PruneResult
from runtrack.store.history import HistoryStore

__all__ = ["prune"]


def prune(
    history: HistoryStore,
    cutoff: datetime,
    *,
    items_only: bool,
    batch_size: int,
    dry_run: bool,
    progress: Callable[[PruneResult], None] | None = None,
) -> PruneResult:
    """Delete terminal runs (or only their items) finished before ``cutoff``.

    Each batch is chosen (``batch_size`` run ids), then its items and rows are
    deleted in short transactions (see ``HistoryStore.prune_batch``), so a writer
    waits at most for one of them, never for the whole prune. ``dry_run``
    counts what each batch would delete.
    """
    result = PruneResult(dry_run=dry_run)
    after: int | None = 0
    while True:
        after, runs, items = history.prune_batch(
            cutoff, after or 0, batch_size, items_only=items_only, dry_run=dry_run
        )
        if after is None:
            return result
        result = PruneResult(result.runs + runs, result.items + items, result.batches + 1, dry_run)
        if progress is not None:
            progress(result)
