"""Retention: delete old history in short batches, never the runs that the
ledger still needs (active runs, each job's latest run and latest successful
run) and never job state, so pruning cannot reset incremental fetching."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from runtrack.models import PruneResult
from runtrack.store.sql import Store

__all__ = ["prune"]


def prune(
    store: Store,
    cutoff: datetime,
    *,
    items_only: bool,
    batch_size: int,
    dry_run: bool,
    progress: Callable[[PruneResult], None] | None = None,
) -> PruneResult:
    """Delete terminal runs (or only their items) finished before ``cutoff``.

    Each batch is its own short transaction, so writers are never blocked for
    longer than one batch takes.
    """
    result = PruneResult(dry_run=dry_run)
    after = 0
    while ids := store.prunable_runs(cutoff, after, batch_size):
        after = ids[-1]
        if dry_run:
            runs, items = (0 if items_only else len(ids)), store.count_items(ids)
        else:
            runs, items = store.delete_runs(ids, items_only=items_only)
        result = PruneResult(result.runs + runs, result.items + items, result.batches + 1, dry_run)
        if progress is not None:
            progress(result)
    return result
