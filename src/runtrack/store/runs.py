"""Runs in the store: creation under a lease, guarded transitions, queries.

Every state change is one conditional statement whose row count is returned
to the ledger, which decides what a zero means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    case,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from runtrack.errors import RecordConflict
from runtrack.models import (
    RunBrief,
    RunRecord,
    RunStatus,
)
from runtrack.store.base import Transactions
from runtrack.store.claiming import resume_checkpoint
from runtrack.store.finalizing import end_columns, finalize_one
from runtrack.store.labels import (
    RUN_WITH_LABELS,
    label_conditions,
    labelled,
    labels_in,
    labels_of,
    write_labels,
)
from runtrack.store.new_run import run_row
from runtrack.store.prepared import RawConnection, raw_autocommit
from runtrack.store.rows import (
    naive,
    run_brief,
    run_record,
)
from runtrack.store.schema import (
    runs,
)
from runtrack.store.staleness import stale_ranges
from runtrack.store.statements import (
    ACTIVE_NAMES,
    INSERT_RUN,
    JOB_FOR_START,
    RECENT_CHUNK,
    Conn,
    recent_runs_union,
    start_at_watermark,
    start_run_stmt,
)
from runtrack.store.values import JobEffect, LeaseTaken, NewRun, RunEnd, RunFilter, StartedRun


class RunStore:
    """Run rows: creation, leases, guarded transitions and queries."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    # -- runs: creation and transitions ----------------------------------

    def insert_run(
        self,
        new: NewRun,
        slots: Sequence[str],
        *,
        explicit_window: bool,
        explicit_end: bool = False,
        history: bool = False,
        clock: Callable[[], datetime],
    ) -> StartedRun:
        """Insert a run holding the first free lease slot, in one transaction
        that also reads the job's watermark (the window's start unless
        ``explicit_window``) and checkpoints (and, with ``history``, its
        volume history), and writes its labels. A retried attempt (an outage,
        a deadlock) starts the run at ``clock()`` as it reads then, not when
        the first attempt was made."""
        values, labels = run_row(new), new.labels
        restamp = _restamper(clock)
        simple = len(slots) == 1 and not explicit_end and values.get("retry_of") is None
        # A labelled run takes the transaction: its labels go with its insert.
        simple = simple and not labels
        if simple and self.tx.dialect in ("sqlite", "postgresql"):
            try:
                started = self._insert_at_once(values, slots[0], explicit_window, history, restamp)
            except RecordConflict:
                return self._collided(values, slots)
            if started is not None:
                return started

        def work(conn: RawConnection) -> StartedRun:
            job = conn.execute(JOB_FOR_START, {"p_job": values["job_key"]}).one()
            row = restamp(dict(values))
            if not explicit_window:
                start_at_watermark(row, job.watermark, explicit_end)
            row["checkpoint"] = resume_checkpoint(
                conn, row.get("retry_of"), row["window_start"], job
            )
            run_id = self._claim_slot(conn, row, slots)
            write_labels(conn, run_id, labels)
            return StartedRun(
                run_id,
                row["window_start"],
                job.checkpoint,
                row["checkpoint"],
                row["window_end"],
                bool(job.owes),
                job.volume_history,
                row.get("started_at"),
            )

        try:
            return self.tx.write_prepared(work)
        except (RecordConflict, LeaseTaken):
            # Every slot's INSERT collided; the holders are read afterwards
            # (a query built per call does not run prepared).
            return self._collided(values, slots)

    def _insert_at_once(
        self,
        values: dict[str, Any],
        slot: str,
        explicit_window: bool,
        history: bool,
        restamp: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> StartedRun | None:
        """The common start as one statement that commits by itself: one round
        trip where the transaction takes four (see :func:`start_run_stmt`).
        ``None`` if the job has no row (the caller's transaction reports it)."""
        row = {**values, "lease_key": slot}
        if not explicit_window:
            row.pop("window_start", None)
        stmt = start_run_stmt(tuple(row), explicit_window, history)
        found = self.tx.retried(
            lambda: raw_autocommit(self.tx.engine, self.tx.prepared, stmt, restamp(row))
        )
        inserted = found.first()
        if inserted is None:
            return None
        return StartedRun(
            inserted.id,
            inserted.window_start,
            inserted.job_checkpoint,
            inserted.checkpoint,
            inserted.window_end,
            bool(inserted.owes),
            inserted.volume_history if history else None,
            row.get("started_at"),
        )

    def _claim_slot(self, conn: Conn, row: dict[str, Any], slots: Sequence[str]) -> int:
        if len(slots) == 1:
            # The common case: one INSERT; a collision aborts the transaction
            # and insert_run reports the holder.
            return self._insert_run_row(conn, {**row, "lease_key": slots[0]})
        for slot in slots:
            try:
                with conn.begin_nested():
                    return self._insert_run_row(conn, {**row, "lease_key": slot})
            except IntegrityError:
                continue
        raise LeaseTaken([])

    @staticmethod
    def _insert_run_row(conn: Conn, row: dict[str, Any]) -> int:
        key = conn.execute(INSERT_RUN, row).inserted_primary_key
        assert key is not None
        return int(key[0])

    def _collided(self, values: dict[str, Any], slots: Sequence[str]) -> StartedRun:
        """Every slot was taken. If this very run holds one, an earlier attempt
        committed and only its answer was lost before the store retried: the
        run did start. Otherwise raise :class:`LeaseTaken` with the holders."""
        columns = ("id", "status", "uid", "window_start", "window_end", "checkpoint", "started_at")
        query = select(*(runs.c[name] for name in columns)).where(runs.c.lease_key.in_(slots))
        holders = self.tx.read(lambda c: c.execute(query).all())
        job = {"p_job": values["job_key"]}
        for held in holders:
            if held.uid == values["uid"]:
                state = self.tx.read(lambda c: c.execute(JOB_FOR_START, job).one())
                return StartedRun(
                    held.id,
                    held.window_start,
                    state.checkpoint,
                    held.checkpoint,
                    held.window_end,
                    bool(state.owes),
                    state.volume_history,
                    held.started_at,
                )
        raise LeaseTaken([(held.id, held.status) for held in holders])

    def transition(
        self,
        run_id: int,
        target: RunStatus,
        allowed: Iterable[RunStatus],
        end: RunEnd,
        *,
        uid: str | None = None,
        effect: JobEffect | None = None,
    ) -> bool:
        """Move a run to ``target`` if it is in ``allowed``, recording ``end``;
        terminal targets also update the job in the same transaction.
        ``effect`` saves re-reading what the caller knows. Returns whether
        this call made the change."""
        values = end_columns(end)

        def work(conn: Connection) -> bool:
            return finalize_one(conn, run_id, target, allowed, values, uid, (), effect)

        return self.tx.write(work)

    def request_cancel(
        self, run_id: int, now: datetime, by: str | None, reason: str | None
    ) -> bool:
        """Flag a running run for cancellation (idempotent on the first request)."""
        stmt = (
            update(runs)
            .where(
                runs.c.id == run_id,
                runs.c.status == RunStatus.RUNNING,
                runs.c.cancel_requested_at.is_(None),
            )
            .values(cancel_requested_at=naive(now), cancel_requested_by=by, cancel_reason=reason)
        )
        return bool(self.tx.write(lambda c: c.execute(stmt).rowcount) == 1)

    def save_checkpoint(self, run_id: int, uid: str, checkpoint: Any) -> bool:
        stmt = (
            update(runs)
            .where(runs.c.id == run_id, runs.c.uid == uid, runs.c.status == RunStatus.RUNNING)
            .values(checkpoint=checkpoint)
        )
        return bool(self.tx.write(lambda c: c.execute(stmt).rowcount) == 1)

    # -- runs: queries -----------------------------------------------------

    def get_run(self, run_id: int) -> RunRecord | None:
        def work(c: Connection) -> RunRecord | None:
            rows = c.execute(RUN_WITH_LABELS, {"p_id": run_id}).all()
            return run_record(rows[0], labels_in(rows)) if rows else None

        return self.tx.read(work)

    def _records(self, query: Any) -> list[RunRecord]:
        """The runs ``query`` reads, with their labels: one more query for
        all of them, and only if a run was found."""

        def work(c: Connection) -> list[RunRecord]:
            rows = c.execute(query).all()
            labels = labels_of(c, [row.id for row in rows]) if rows else {}
            return [run_record(row, labels.get(row.id)) for row in rows]

        return self.tx.read(work)

    def list_runs(
        self, filters: RunFilter, limit: int, before_id: int | None, *, offset: int = 0
    ) -> list[RunRecord]:
        source: Any = runs
        key: Any = runs.c.id
        conditions = self._run_conditions(filters, labels=False)
        if filters.labels:
            # Driven by the first label's index range (see store/labels.py);
            # the runs table only if another filter reads it.
            first, key, labelled_by = labelled(filters.labels)
            source = first.join(runs, runs.c.id == key) if conditions else first
            conditions += labelled_by
        if before_id is not None:
            conditions.append(key < before_id)
        page = select(key.label("id")).select_from(source).where(*conditions)
        page = page.order_by(key.desc()).limit(limit)
        if offset:
            page = page.offset(offset)
        if not filters.labels and filters.since is None and filters.until is None and not offset:
            query = select(runs).where(*conditions).order_by(runs.c.id.desc()).limit(limit)
        else:
            # A time range is read in created_at order and must be sorted by
            # id; an OFFSET walks the rows it skips; a label's range holds
            # ids only. Each time, choose the page's ids from the index
            # alone, then read only those rows.
            ids = page.subquery()
            query = select(runs).join(ids, runs.c.id == ids.c.id).order_by(runs.c.id.desc())
        return self._records(query)

    def count_runs(self, filters: RunFilter, at_most: int | None = None) -> int:
        """How many runs match, or ``at_most`` if at least that many do (an
        index range that stops there, never a count of the whole history)."""
        conditions = self._run_conditions(filters)
        if at_most is None:
            query = select(func.count()).select_from(runs).where(*conditions)
        else:
            stop = select(runs.c.id).where(*conditions).limit(at_most).subquery()
            query = select(func.count()).select_from(stop)
        return int(self.tx.read(lambda c: c.execute(query).scalar_one()))

    @staticmethod
    def _run_conditions(f: RunFilter, *, labels: bool = True) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = label_conditions(f.labels) if labels else []
        if f.job is not None:
            conditions.append(runs.c.job_key == f.job)
        if f.provider is not None:
            conditions.append(runs.c.provider == f.provider)
        if f.statuses:
            conditions.append(runs.c.status.in_([s.value for s in f.statuses]))
        if f.triggered_by is not None:
            conditions.append(runs.c.triggered_by == f.triggered_by)
        if f.since is not None:
            conditions.append(runs.c.created_at >= naive(f.since))
        if f.until is not None:
            conditions.append(runs.c.created_at < naive(f.until))
        if f.job_contains is not None:
            conditions.append(runs.c.job_key.icontains(f.job_contains, autoescape=True))
        if f.error_contains is not None:
            conditions.append(runs.c.error_message.icontains(f.error_contains, autoescape=True))
        return conditions

    def active_runs(self, job: str | None = None) -> list[RunRecord]:
        """Active runs (of ``job``), oldest first. A range of the status index
        whatever the filter: given a job too, planners walk the job's whole
        history by its (job_key, id) index, so the job is picked out here."""
        query = select(runs).where(runs.c.status.in_(ACTIVE_NAMES)).order_by(runs.c.id)
        return [r for r in self._records(query) if job is None or r.job == job]

    def recent_runs_of_jobs(self, job_keys: Sequence[str], limit: int) -> dict[str, list[RunBrief]]:
        """The last ``limit`` runs of each job in outline, newest first: one
        statement per 100 jobs (see :func:`recent_runs_union`), so the cost follows
        ``len(job_keys) * limit``, never the size of the table."""
        found: dict[str, list[RunBrief]] = {key: [] for key in job_keys}
        keys = list(found)
        for start in range(0, len(keys), RECENT_CHUNK):
            chunk = keys[start : start + RECENT_CHUNK]
            query = recent_runs_union(len(chunk), limit)
            params = {f"k{i}": key for i, key in enumerate(chunk)}
            for row in self.tx.read(lambda c, q=query, p=params: c.execute(q, p).all()):  # type: ignore[misc]
                found[row.job_key].append(run_brief(row))
        for briefs in found.values():
            briefs.sort(key=lambda brief: brief.id, reverse=True)
        return found

    def count_stale(self, heartbeat_cutoff: datetime) -> int:
        """How many active runs have been silent since before the cutoff (the
        heartbeat ranges of :meth:`stale_runs`, counted on the status indexes)."""
        ranges = [conditions for _, conditions in stale_ranges(heartbeat_cutoff)]
        counts = [
            select(func.count()).select_from(runs).where(*conditions).scalar_subquery()
            for conditions in ranges
        ]
        row = self.tx.read(lambda c: c.execute(select(*counts)).one())
        return sum(int(n) for n in row)

    def active_counts(self) -> dict[str, tuple[int, int]]:
        """Active runs per job, and how many of them are running (a range of
        the status index: the cost follows the number of active runs)."""
        running = func.sum(case((runs.c.status == RunStatus.RUNNING.value, 1), else_=0))
        query = (
            select(runs.c.job_key, func.count(), running)
            .where(runs.c.status.in_(ACTIVE_NAMES))
            .group_by(runs.c.job_key)
        )
        found = self.tx.read(lambda c: c.execute(query).all())
        return {row[0]: (int(row[1]), int(row[2] or 0)) for row in found}

    def count_started(self, status: RunStatus, since: datetime) -> int:
        """How many runs that started at or after ``since`` are in ``status``
        (a range of the (status, started_at) index)."""
        query = (
            select(func.count())
            .select_from(runs)
            .where(runs.c.status == status, runs.c.started_at >= naive(since))
        )
        return int(self.tx.read(lambda c: c.execute(query).scalar_one()))


def _restamper(clock: Callable[[], datetime]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What each attempt of a start does to its row: the first leaves it as
    the ledger made it; a retry, if the row starts a run, sets its start and
    first heartbeat to ``clock()`` (the job's previous run may have held the
    slot until just before)."""
    attempts = 0

    def restamp(row: dict[str, Any]) -> dict[str, Any]:
        nonlocal attempts
        attempts += 1
        if attempts > 1 and "started_at" in row:
            row["started_at"] = row["heartbeat_at"] = naive(clock())
        return row

    return restamp
