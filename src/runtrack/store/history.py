"""What runs leave behind: items, retention, provider pauses, tallies, maintenance."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection

from runtrack.models import (
    ItemRecord,
    JobTally,
    PauseRecord,
)
from runtrack.store import dialects
from runtrack.store.base import Transactions
from runtrack.store.rows import (
    aware,
    item_record,
    naive,
    pause_record,
    tally_record,
)
from runtrack.store.schema import (
    job_tallies,
    jobs,
    maintenance,
    provider_pauses,
    run_items,
    runs,
)
from runtrack.store.statements import (
    TERMINAL_NAMES,
    prunable_query,
)

#: Runs deleted per write transaction where writers poll for the lock.
POLLED_PART = 200


def _delete_runs(conn: Connection, ids: list[int], items_only: bool) -> tuple[int, int]:
    """Delete these runs' items and, unless ``items_only``, the runs (those
    still terminal); (runs, items) deleted."""
    items = conn.execute(delete(run_items).where(run_items.c.run_id.in_(ids))).rowcount
    if items_only:
        return 0, items
    gone = delete(runs).where(runs.c.id.in_(ids), runs.c.status.in_(TERMINAL_NAMES))
    return conn.execute(gone).rowcount, items


class HistoryStore:
    """Items, retention, provider pauses, tallies and maintenance bookkeeping."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    # -- items -----------------------------------------------------------------

    def list_items(
        self,
        run_id: int,
        status: str | None,
        group: str | None,
        limit: int,
        after_id: int | None,
    ) -> list[ItemRecord]:
        query = select(run_items).where(run_items.c.run_id == run_id)
        if status is not None:
            query = query.where(run_items.c.status == status)
        if group is not None:
            query = query.where(run_items.c.group_key == group)
        if after_id is not None:
            query = query.where(run_items.c.id > after_id)
        query = query.order_by(run_items.c.id).limit(limit)
        return [item_record(r) for r in self.tx.read(lambda c: c.execute(query).all())]

    def item_group_counts(self, run_id: int) -> list[tuple[str, str | None, str, int]]:
        """(group, source, status, count) of a run's grouped items."""
        query = (
            select(run_items.c.group_key, run_items.c.source, run_items.c.status, func.count())
            .where(run_items.c.run_id == run_id, run_items.c.group_key.is_not(None))
            .group_by(run_items.c.group_key, run_items.c.source, run_items.c.status)
            .order_by(run_items.c.group_key, run_items.c.source, run_items.c.status)
        )
        rows = self.tx.read(lambda c: c.execute(query).all())
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    # -- retention -----------------------------------------------------------

    def prune_batch(
        self, cutoff: datetime, after_id: int, limit: int, *, items_only: bool, dry_run: bool
    ) -> tuple[int | None, int, int]:
        """One batch of retention: choose up to ``limit`` prunable runs after
        ``after_id`` (terminal, finished before ``cutoff``, not a job's latest
        run or latest successful run), then delete their items and, unless
        ``items_only``, the runs in short transactions; on a dry run only
        count them. Returns (last id chosen, or None when none is left; runs;
        items)."""
        query = prunable_query(cutoff, after_id, limit)
        # Chosen before the write transactions, so that the write lock (all of
        # SQLite's) is held for the deletes only; why that choice stays right
        # is in retention.py. The delete still checks the status.
        ids: list[int] = self.tx.read(lambda c: list(c.execute(query).scalars()))
        if not ids:
            return None, 0, 0
        of_runs = run_items.c.run_id.in_(ids)
        if dry_run:
            count = select(func.count()).select_from(run_items).where(of_runs)
            items = self.tx.read(lambda c: int(c.execute(count).scalar_one()))
            return ids[-1], 0 if items_only else len(ids), items

        deleted_runs = deleted_items = 0
        for part in self._write_parts(ids):
            runs_gone, items_gone = self.tx.write(
                partial(_delete_runs, ids=part, items_only=items_only)
            )
            deleted_runs += runs_gone
            deleted_items += items_gone
        return ids[-1], deleted_runs, deleted_items

    def _write_parts(self, ids: list[int]) -> Iterator[list[int]]:
        """The batch in one transaction; or, where writers poll for the lock
        instead of queueing (SQLite), in parts of :data:`POLLED_PART` runs,
        each followed by a pause as long as it held the lock, so that a
        waiting writer's poll lands in a pause rather than behind the batch
        (back-to-back deletes would starve it). After the batch the pruner
        also copies the write-ahead log into the database itself (PASSIVE:
        it waits for no one), rather than leaving that to whichever writer's
        commit crosses the auto-checkpoint threshold next."""
        if not dialects.polls_for_locks(self.tx.dialect):
            yield ids
            return
        for start in range(0, len(ids), POLLED_PART):
            began = time.monotonic()
            yield ids[start : start + POLLED_PART]
            time.sleep(time.monotonic() - began)
        self.tx.read(lambda c: c.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all())

    # -- provider pauses -----------------------------------------------------

    def set_pause(self, pause: PauseRecord) -> None:
        values = {
            "provider": pause.provider,
            "paused_until": naive(pause.until),
            "reason": pause.reason,
            "paused_at": naive(pause.paused_at),
            "paused_by": pause.paused_by,
        }
        update_cols = ["paused_until", "reason", "paused_at", "paused_by"]
        self.tx.write(lambda c: c.execute(dialects.upsert(c, provider_pauses, values, update_cols)))

    def delete_pause(self, provider: str) -> bool:
        stmt = delete(provider_pauses).where(provider_pauses.c.provider == provider)
        return bool(self.tx.write(lambda c: c.execute(stmt).rowcount) > 0)

    def active_pauses(self, now: datetime, provider: str | None = None) -> list[PauseRecord]:
        query = select(provider_pauses).where(provider_pauses.c.paused_until > naive(now))
        if provider is not None:
            query = query.where(provider_pauses.c.provider == provider)
        query = query.order_by(provider_pauses.c.provider)
        return [pause_record(r) for r in self.tx.read(lambda c: c.execute(query).all())]

    # -- tallies (metrics without scanning runs) ---------------------------------

    def job_tallies(self) -> list[JobTally]:
        """Every job's tallies by terminal status, with the job's provider
        (a few rows per job, whatever the number of runs)."""
        query = (
            select(job_tallies, jobs.c.provider)
            .join(jobs, jobs.c.key == job_tallies.c.job_key)
            .order_by(job_tallies.c.job_key, job_tallies.c.status)
        )
        return [tally_record(r) for r in self.tx.read(lambda c: c.execute(query).all())]

    # -- maintenance bookkeeping ------------------------------------------------

    def mark_maintenance(self, task: str, now: datetime, details: dict[str, Any]) -> None:
        values = {"task": task, "last_run_at": naive(now), "details": details}
        self.tx.write(
            lambda c: c.execute(dialects.upsert(c, maintenance, values, ["last_run_at", "details"]))
        )

    def claim_maintenance(self, task: str, now: datetime, last_before: datetime) -> bool:
        """Take this interval's turn at ``task`` unless it ran after
        ``last_before``; of many callers racing, one gets True."""

        def work(conn: Connection) -> bool:
            first: dict[str, Any] = {"task": task, "last_run_at": naive(last_before), "details": {}}
            conn.execute(dialects.insert_ignore(conn, maintenance, first))
            stmt = (
                update(maintenance)
                .where(maintenance.c.task == task, maintenance.c.last_run_at <= naive(last_before))
                .values(last_run_at=naive(now))
            )
            return bool(conn.execute(stmt).rowcount == 1)

        return self.tx.write(work)

    def last_maintenance(self, task: str) -> tuple[datetime, dict[str, Any]] | None:
        query = select(maintenance).where(maintenance.c.task == task)
        row = self.tx.read(lambda c: c.execute(query).first())
        if row is None:
            return None
        last = aware(row.last_run_at)
        assert last is not None
        return last, row.details or {}
