"""The store: every SQL statement runtrack issues, in SQLAlchemy Core.

Grouped by concept (transactions, jobs, runs, liveness, items, retention,
pauses, maintenance). Every state change is one conditional statement whose
row count is returned to the ledger, which decides what a zero means. Driver
errors are translated to :mod:`runtrack.errors` here and nowhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Engine,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql.dml import Insert, Update
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from runtrack.errors import DatabaseUnavailable
from runtrack.models import (
    ACTIVE,
    ALLOWED_FROM,
    GOOD,
    TERMINAL,
    ItemRecord,
    JobRecord,
    JobTally,
    PauseRecord,
    RunBrief,
    RunRecord,
    RunStatus,
)
from runtrack.store import dialects
from runtrack.store.prepared import Prepared, RawConnection, raw_transaction
from runtrack.store.rows import (
    aware,
    item_record,
    job_record,
    naive,
    pause_record,
    run_brief,
    run_record,
    tally_record,
)
from runtrack.store.schema import (
    DURATION_BOUNDS,
    job_tallies,
    jobs,
    maintenance,
    provider_pauses,
    run_items,
    runs,
)

__all__ = ["RunFilter", "StartedRun", "Store", "WindowBeforeWatermark"]

T = TypeVar("T")
#: What the statements shared by the hot path and the others run on.
Conn = Connection | RawConnection
_ACTIVE = sorted(ACTIVE)
#: Runs per heartbeat statement: keeps the bind parameters of one batched
#: UPDATE (four per run) far below every driver's limit.
BEAT_CHUNK = 500
#: A run's status, cancel request time and cancel reason, as a tick reads them.
RunState = tuple[str, datetime | None, str | None]
_TERMINAL = sorted(TERMINAL)


@dataclass(frozen=True, slots=True)
class RunFilter:
    """The filters every run listing understands."""

    job: str | None = None
    provider: str | None = None
    statuses: tuple[RunStatus, ...] = ()
    triggered_by: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class StartedRun:
    """What the store tells the ledger about a run it just inserted."""

    id: int
    window_start: datetime | None
    job_checkpoint: Any
    resume_checkpoint: Any
    window_end: datetime | None = None


def _start_at_watermark(row: dict[str, Any], watermark: datetime | None, fixed_end: bool) -> None:
    """Start the run's window at the job's watermark (naive UTC values)."""
    row["window_start"] = watermark
    if watermark is not None and row["window_end"] < watermark:
        if fixed_end:
            raise WindowBeforeWatermark(watermark)
        # Another machine's clock ran ahead of ours: an empty window, never an
        # inverted one.
        row["window_end"] = watermark


def _prunable(cutoff: datetime, after_id: int, limit: int) -> Select[Any]:
    keep = (
        select(jobs.c.last_run_id)
        .where(jobs.c.last_run_id.is_not(None))
        .union(select(jobs.c.last_success_run_id).where(jobs.c.last_success_run_id.is_not(None)))
    )
    return (
        select(runs.c.id)
        .where(
            runs.c.id > after_id,
            # "Not active" rather than "IN (terminal)": the same runs, but no
            # status index tempts the planner, which walks the primary key from
            # after_id and stops at the limit instead of sorting every
            # terminal run of the table on each batch.
            runs.c.status.not_in(_ACTIVE),
            runs.c.finished_at < naive(cutoff),
            runs.c.id.not_in(keep),
        )
        .order_by(runs.c.id)
        .limit(limit)
    )


class WindowBeforeWatermark(Exception):
    """Internal: a run's explicit window_end is before the job's watermark."""

    def __init__(self, watermark: datetime) -> None:
        self.watermark = watermark
        super().__init__(watermark)


class LeaseTaken(Exception):
    """Internal: every lease slot of the job is held (holders listed)."""

    def __init__(self, holders: list[tuple[int, str]]) -> None:
        self.holders = holders  # (run id, status)
        super().__init__(holders)


@dataclass(frozen=True, slots=True)
class JobEffect:
    """What a terminal run changes on its job (naive UTC ``window_end``)."""

    job_key: str
    window_end: datetime | None
    moves_watermark: bool
    checkpoint: Any
    started_at: datetime | None = None  # naive UTC; for the duration tally


# Hot-path statements are built once and take their values as parameters:
# they run prepared on the driver's connection (see store/prepared.py), which
# needs long-lived statement objects, and no expression is built per run.
_INSERT_RUN = insert(runs)
_INSERT_ITEMS = insert(run_items)
_RUN_CHECKPOINT = select(runs.c.checkpoint, runs.c.window_start).where(
    runs.c.id == bindparam("p_id")
)
# Lock one run's row for an item flush (SQLite: BEGIN IMMEDIATE already serializes).
_LOCK_RUN = (
    select(runs.c.id, runs.c.uid, runs.c.status)
    .where(runs.c.id == bindparam("p_id"))
    .with_for_update()
)
# The same for many runs at once: a fixed IN list, so that it is prepared once
# and a tick locks 500 runs per statement (a short list repeats its last id).
_LOCK_RUNS = (
    select(runs.c.id, runs.c.uid, runs.c.status)
    .where(runs.c.id.in_([bindparam(f"p_id{i}") for i in range(BEAT_CHUNK)]))
    .order_by(runs.c.id)
    .with_for_update()
)
_JOB_FOR_START = select(
    jobs.c.watermark, jobs.c.checkpoint, jobs.c.last_run_id, jobs.c.last_status
).where(jobs.c.key == bindparam("p_job"))
_RUN_EFFECT = select(
    runs.c.job_key,
    runs.c.window_end,
    runs.c.moves_watermark,
    runs.c.checkpoint,
    runs.c.started_at,
    runs.c.items_success,
    runs.c.items_not_found,
    runs.c.items_skipped,
    runs.c.items_error,
).where(runs.c.id == bindparam("p_id"))


@functools.cache
def _update_run(with_uid: bool, allowed: tuple[str, ...]) -> Update:
    """``UPDATE runs SET <the parameters named like columns> WHERE id AND
    status IN (allowed) [AND uid]``: the conditional transition."""
    stmt = update(runs).where(
        runs.c.id == bindparam("p_id"),
        or_(*(runs.c.status == status for status in allowed)),
    )
    return stmt.where(runs.c.uid == bindparam("p_uid")) if with_uid else stmt


@functools.cache
def _job_update(status: RunStatus, moves_watermark: bool, checkpoint: bool) -> Update:
    """The job-state update of a terminal run, one statement per outcome kind."""
    run_id = bindparam("j_run_id", type_=jobs.c.last_run_id.type)
    finished = bindparam("j_finished", type_=jobs.c.last_finished_at.type)
    # A reaped old run must not overwrite the pointers of a newer one.
    newer = or_(jobs.c.last_run_id.is_(None), jobs.c.last_run_id <= run_id)

    def latest(value: Any, column: Any) -> Any:
        return case((newer, value), else_=column)

    changes: dict[str, Any] = {
        "last_run_id": latest(run_id, jobs.c.last_run_id),
        "last_status": latest(
            bindparam("j_status", type_=jobs.c.last_status.type), jobs.c.last_status
        ),
        "last_finished_at": latest(finished, jobs.c.last_finished_at),
    }
    streak = jobs.c.consecutive_failures
    if status is RunStatus.FAILED:
        changes["consecutive_failures"] = latest(streak + 1, streak)
    elif status in GOOD:
        changes["consecutive_failures"] = latest(0, streak)
    if moves_watermark:
        end = bindparam("j_end", type_=jobs.c.watermark.type)
        changes["watermark"] = case(
            (or_(jobs.c.watermark.is_(None), jobs.c.watermark < end), end),
            else_=jobs.c.watermark,
        )
    if checkpoint:
        changes["checkpoint"] = bindparam("j_checkpoint", type_=jobs.c.checkpoint.type)
    if status is RunStatus.SUCCESS:
        newer_success = or_(
            jobs.c.last_success_run_id.is_(None), jobs.c.last_success_run_id <= run_id
        )
        changes["last_success_at"] = case((newer_success, finished), else_=jobs.c.last_success_at)
        changes["last_success_run_id"] = case(
            (newer_success, run_id), else_=jobs.c.last_success_run_id
        )
    return update(jobs).where(jobs.c.key == bindparam("j_key")).values(changes)


_TALLY_ITEMS = ("items_success", "items_not_found", "items_skipped", "items_error")


@functools.cache
def _tally_upsert(dialect: str) -> Insert:
    added = [c.name for c in job_tallies.c if not c.primary_key]
    return dialects.upsert_add(dialect, job_tallies, added)


def _alike(
    changes: Sequence[
        tuple[int, RunStatus, frozenset[RunStatus], dict[str, Any], list[ColumnElement[bool]]]
    ],
) -> list[tuple[tuple[int, ...], tuple[RunStatus, frozenset[RunStatus], dict[str, Any], Any]]]:
    """Changes grouped by what they do: target, allowed statuses, values and
    guard (the same guard object, see :meth:`Store.heartbeat_older_than`), in
    the order given. Groups may share runs (a busy job's holder is offered
    each kind of change in turn): a list, not a dict keyed by the runs."""
    groups: dict[Any, tuple[list[int], Any]] = {}
    for run_id, target, allowed, values, where in changes:
        key = (target, allowed, repr(sorted(values.items())), tuple(id(w) for w in where))
        groups.setdefault(key, ([], (target, allowed, values, where)))[0].append(run_id)
    return [(tuple(ids), change) for ids, change in groups.values()]


def _job_change(
    run_id: int, status: RunStatus, finished: datetime, effect: JobEffect
) -> tuple[Update, dict[str, Any]]:
    """The job update of a run that just became terminal, and its parameters."""
    moves = effect.moves_watermark and effect.window_end is not None and status in GOOD
    checkpoint = effect.checkpoint is not None and status in GOOD
    params: dict[str, Any] = {
        "j_key": effect.job_key,
        "j_run_id": run_id,
        "j_status": status.value,
        "j_finished": finished,
    }
    if moves:
        params["j_end"] = naive(effect.window_end)
    if checkpoint:
        params["j_checkpoint"] = effect.checkpoint
    return _job_update(status, moves, checkpoint), params


def _tally_params(
    job_key: str,
    status: RunStatus,
    started: datetime | None,
    finished: datetime | None,
    items: Mapping[str, Any],
) -> dict[str, Any]:
    """One terminal run, as the amounts it adds to its job's tallies."""
    params: dict[str, Any] = {
        "job_key": job_key,
        "status": status.value,
        "runs": 1,
        "duration_count": 0,
        "duration_sum": 0.0,
    }
    for column in _TALLY_ITEMS:
        params[column] = int(items.get(column) or 0)
    for bound in DURATION_BOUNDS:
        params[f"le_{bound}"] = 0
    start, end = naive(started), naive(finished)
    if start is not None and end is not None:
        seconds = max((end - start).total_seconds(), 0.0)
        params["duration_count"] = 1
        params["duration_sum"] = seconds
        bucket = next((b for b in DURATION_BOUNDS if seconds <= b), None)
        if bucket is not None:
            params[f"le_{bucket}"] = 1
    return params


_RECENT_CHUNK = 100


@functools.lru_cache(maxsize=16)
def _recent_runs(branches: int, limit: int) -> Select[Any] | CompoundSelect[Any]:
    """The last ``limit`` runs of ``branches`` jobs (parameters ``k0``, ``k1``,
    ...): a UNION ALL whose every branch is a backwards range of the
    (job_key, id) index with its own LIMIT. Built once per shape, so the
    compiled-statement cache is hit and no expression is built per page."""
    columns = (
        runs.c.id,
        runs.c.job_key,
        runs.c.status,
        runs.c.created_at,
        runs.c.started_at,
        runs.c.finished_at,
    )
    selects = [
        select(
            select(*columns)
            .where(runs.c.job_key == bindparam(f"k{i}"))
            .order_by(runs.c.id.desc())
            .limit(limit)
            .subquery()
        )
        for i in range(branches)
    ]
    return selects[0].union_all(*selects[1:]) if branches > 1 else selects[0]


class Store:
    """All database work, on one engine."""

    def __init__(self, engine: Engine, *, retry_seconds: float = 5.0) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._retry_seconds = retry_seconds
        self._prepared: dict[Any, Prepared] = {}

    # -- transactions ---------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise DatabaseUnavailable(
                f"database error ({type(exc.orig).__name__}): {exc.orig}"
            ) from exc

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(dialects.is_retryable),
            wait=wait_random_exponential(multiplier=0.02, max=1.0),
            stop=stop_after_delay(self._retry_seconds) | stop_after_attempt(50),
            reraise=True,
        )

    def _retried(self, once: Callable[[], T]) -> T:
        """``once()``, retried whole on lock contention, deadlocks and dropped
        connections. The first attempt runs bare: building the retry policy
        costs more than the statements of a run, and it is rarely needed."""
        with self._translated():
            try:
                return once()
            except DBAPIError as exc:
                if not dialects.is_retryable(exc):
                    raise
            for attempt in self._retrying():
                with attempt:
                    return once()
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction, retried whole on lock
        contention, deadlocks and dropped connections."""

        def once() -> T:
            with self.engine.connect() as conn:
                conn.execution_options(**{dialects.IMMEDIATE: True})
                with conn.begin():
                    return work(conn)

        return self._retried(once)

    def write_prepared(self, work: Callable[[RawConnection], T]) -> T:
        """:meth:`write` for the hot path: ``work`` may execute only long-lived
        statements, which run prepared on the driver's connection."""
        return self._retried(lambda: raw_transaction(self.engine, self._prepared, work))

    def read(self, work: Callable[[Connection], T]) -> T:
        def once() -> T:
            with self.engine.connect() as conn:
                return work(conn)

        return self._retried(once)

    def server_now(self) -> datetime:
        return self.read(dialects.now_sql)

    # -- jobs -------------------------------------------------------------

    def ensure_job(self, key: str, provider: str | None, now: datetime) -> None:
        values = {
            "key": key,
            "provider": provider,
            "created_at": naive(now),
            "consecutive_failures": 0,
        }
        self.write(lambda c: c.execute(dialects.insert_ignore(c, jobs, values)))

    def get_job(self, key: str) -> JobRecord | None:
        row = self.read(lambda c: c.execute(select(jobs).where(jobs.c.key == key)).first())
        return job_record(row) if row else None

    def provider_job_counts(self) -> dict[str, int]:
        """How many jobs each provider has."""
        query = (
            select(jobs.c.provider, func.count())
            .where(jobs.c.provider.is_not(None))
            .group_by(jobs.c.provider)
        )
        return {row[0]: int(row[1]) for row in self.read(lambda c: c.execute(query).all())}

    def list_jobs(self, provider: str | None = None) -> list[JobRecord]:
        query = select(jobs).order_by(jobs.c.key)
        if provider is not None:
            query = query.where(jobs.c.provider == provider)
        return [job_record(r) for r in self.read(lambda c: c.execute(query).all())]

    def get_jobs(self, keys: Sequence[str]) -> list[JobRecord]:
        """The jobs with these keys (unknown keys are left out)."""
        query = select(jobs).where(jobs.c.key.in_(list(keys))).order_by(jobs.c.key)
        return [job_record(r) for r in self.read(lambda c: c.execute(query).all())]

    def claim_tick(self, key: str, due: datetime | None, next_due: datetime) -> bool:
        """Move the job's ``next_due_at`` from ``due`` to ``next_due`` if it is
        still ``due``: the one caller whose update changes the row owns the tick."""
        seen = jobs.c.next_due_at.is_(None) if due is None else jobs.c.next_due_at == naive(due)
        stmt = update(jobs).where(jobs.c.key == key, seen).values(next_due_at=naive(next_due))
        return bool(self.write(lambda c: c.execute(stmt).rowcount) == 1)

    # -- runs: creation and transitions ----------------------------------

    def insert_run(
        self,
        values: dict[str, Any],
        slots: Sequence[str],
        *,
        explicit_window: bool,
        explicit_end: bool = False,
    ) -> StartedRun:
        """Insert a run holding the first free lease slot, in one transaction
        that also reads the job's watermark (the window's start unless
        ``explicit_window``) and checkpoints."""

        def work(conn: RawConnection) -> StartedRun:
            job = conn.execute(_JOB_FOR_START, {"p_job": values["job_key"]}).one()
            row = dict(values)
            if not explicit_window:
                _start_at_watermark(row, job.watermark, explicit_end)
            # A run's checkpoint starts at the one it resumes from, so a run
            # that fails again before saving one hands it on to the next.
            row["checkpoint"] = self._resume_checkpoint(conn, row, job)
            run_id = self._claim_slot(conn, row, slots)
            return StartedRun(
                run_id, row["window_start"], job.checkpoint, row["checkpoint"], row["window_end"]
            )

        try:
            return self.write_prepared(work)
        except (IntegrityError, LeaseTaken):
            # Every slot's INSERT collided; the holders are read afterwards
            # (a query built per call does not run prepared).
            raise LeaseTaken(self._lease_holders(slots)) from None

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
        key = conn.execute(_INSERT_RUN, row).inserted_primary_key
        assert key is not None
        return int(key[0])

    def _lease_holders(self, slots: Sequence[str]) -> list[tuple[int, str]]:
        query = select(runs.c.id, runs.c.status).where(runs.c.lease_key.in_(slots))
        return [(h.id, h.status) for h in self.read(lambda c: c.execute(query).all())]

    @staticmethod
    def _resume_checkpoint(conn: Conn, row: dict[str, Any], job: Any) -> Any:
        """The checkpoint of the run ``row`` retries: ``retry_of``, else the
        job's last run if it failed or was cancelled over the same window
        start (a failed backfill does not hand its cursor to a regular run)."""
        if row.get("retry_of") is not None:
            return conn.execute(_RUN_CHECKPOINT, {"p_id": row["retry_of"]}).scalar()
        if job.last_status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            return None
        last = conn.execute(_RUN_CHECKPOINT, {"p_id": job.last_run_id}).first()
        if last is None or last.window_start != row["window_start"]:
            return None
        return last.checkpoint

    def transition(
        self,
        run_id: int,
        target: RunStatus,
        allowed: Iterable[RunStatus],
        values: dict[str, Any],
        *,
        uid: str | None = None,
        where: Sequence[ColumnElement[bool]] = (),
        effect: JobEffect | None = None,
    ) -> bool:
        """Move a run to ``target`` if it is in ``allowed`` (and matches
        ``where``); terminal targets also update the job in the same
        transaction. ``values`` hold naive UTC timestamps (terminal targets
        need ``finished_at``); ``effect`` saves re-reading what the caller
        knows. Returns whether this call made the change."""

        def work(conn: Connection) -> bool:
            return self._transition(conn, run_id, target, allowed, values, uid, where, effect)

        return self.write(work)

    def _transition(
        self,
        conn: Conn,
        run_id: int,
        target: RunStatus,
        allowed: Iterable[RunStatus],
        values: dict[str, Any],
        uid: str | None,
        where: Sequence[ColumnElement[bool]],
        effect: JobEffect | None = None,
    ) -> bool:
        params = dict(values, status=target.value, p_id=run_id)
        if target in TERMINAL:
            params["lease_key"] = None
        if uid is not None:
            params["p_uid"] = uid
        stmt = _update_run(uid is not None, tuple(sorted(status.value for status in allowed)))
        if where:
            stmt = stmt.where(*where)
        if conn.execute(stmt, params).rowcount != 1:
            return False
        if target in TERMINAL:
            counted = values  # the item tallies, when the caller wrote them
            if effect is None:
                row = conn.execute(_RUN_EFFECT, {"p_id": run_id}).one()
                effect = JobEffect(
                    row.job_key, row.window_end, row.moves_watermark, row.checkpoint, row.started_at
                )
                counted = {**{c: getattr(row, c) for c in _TALLY_ITEMS}, **values}
            finished = values["finished_at"]
            self._finalize_job(conn, run_id, target, finished, effect)
            self._add_tally(conn, effect.job_key, target, effect.started_at, finished, counted)
        return True

    @staticmethod
    def _finalize_job(
        conn: Conn, run_id: int, status: RunStatus, finished: datetime, effect: JobEffect
    ) -> None:
        """Move the job's pointers, failure streak, watermark and checkpoint
        for a run that just became terminal (same transaction)."""
        conn.execute(*_job_change(run_id, status, finished, effect))

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
        return bool(self.write(lambda c: c.execute(stmt).rowcount) == 1)

    def save_checkpoint(self, run_id: int, uid: str, checkpoint: Any) -> bool:
        stmt = (
            update(runs)
            .where(runs.c.id == run_id, runs.c.uid == uid, runs.c.status == RunStatus.RUNNING)
            .values(checkpoint=checkpoint)
        )
        return bool(self.write(lambda c: c.execute(stmt).rowcount) == 1)

    # -- runs: queries -----------------------------------------------------

    def get_run(self, run_id: int) -> RunRecord | None:
        row = self.read(lambda c: c.execute(select(runs).where(runs.c.id == run_id)).first())
        return run_record(row) if row else None

    def list_runs(
        self, filters: RunFilter, limit: int, before_id: int | None, *, offset: int = 0
    ) -> list[RunRecord]:
        query = select(runs).where(*self._run_conditions(filters))
        if before_id is not None:
            query = query.where(runs.c.id < before_id)
        query = query.order_by(runs.c.id.desc()).limit(limit)
        if offset:
            query = query.offset(offset)
        return [run_record(r) for r in self.read(lambda c: c.execute(query).all())]

    def count_runs(self, filters: RunFilter) -> int:
        query = select(func.count()).select_from(runs).where(*self._run_conditions(filters))
        return int(self.read(lambda c: c.execute(query).scalar_one()))

    @staticmethod
    def _run_conditions(f: RunFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
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
        return conditions

    def active_runs(self, job: str | None = None) -> list[RunRecord]:
        """Active runs (of ``job``), oldest first. A range of the status index
        whatever the filter: given a job too, planners walk the job's whole
        history by its (job_key, id) index, so the job is picked out here."""
        query = select(runs).where(runs.c.status.in_(_ACTIVE)).order_by(runs.c.id)
        rows = self.read(lambda c: c.execute(query).all())
        return [run_record(r) for r in rows if job is None or r.job_key == job]

    def recent_runs_of_jobs(self, job_keys: Sequence[str], limit: int) -> dict[str, list[RunBrief]]:
        """The last ``limit`` runs of each job in outline, newest first: one
        statement per 100 jobs (see :func:`_recent_runs`), so the cost follows
        ``len(job_keys) * limit``, never the size of the table."""
        found: dict[str, list[RunBrief]] = {key: [] for key in job_keys}
        keys = list(found)
        for start in range(0, len(keys), _RECENT_CHUNK):
            chunk = keys[start : start + _RECENT_CHUNK]
            query = _recent_runs(len(chunk), limit)
            params = {f"k{i}": key for i, key in enumerate(chunk)}
            for row in self.read(lambda c, q=query, p=params: c.execute(q, p).all()):  # type: ignore[misc]
                found[row.job_key].append(run_brief(row))
        for briefs in found.values():
            briefs.sort(key=lambda brief: brief.id, reverse=True)
        return found

    def count_stale(self, heartbeat_cutoff: datetime) -> int:
        """How many active runs have been silent since before the cutoff (the
        heartbeat ranges of :meth:`stale_runs`, counted on the status indexes)."""
        hb = naive(heartbeat_cutoff)
        ranges = [
            (runs.c.status == RunStatus.RUNNING, runs.c.heartbeat_at < hb),
            (
                runs.c.status == RunStatus.RUNNING,
                runs.c.heartbeat_at.is_(None),
                runs.c.started_at < hb,
            ),
            (runs.c.status == RunStatus.PENDING, runs.c.created_at < hb),
        ]
        counts = [
            select(func.count()).select_from(runs).where(*conditions).scalar_subquery()
            for conditions in ranges
        ]
        row = self.read(lambda c: c.execute(select(*counts)).one())
        return sum(int(n) for n in row)

    def active_counts(self) -> dict[str, int]:
        """Active runs per job (a range of the status index: the cost follows
        the number of active runs)."""
        query = (
            select(runs.c.job_key, func.count())
            .where(runs.c.status.in_(_ACTIVE))
            .group_by(runs.c.job_key)
        )
        return {row[0]: int(row[1]) for row in self.read(lambda c: c.execute(query).all())}

    def count_started(self, status: RunStatus, since: datetime) -> int:
        """How many runs that started at or after ``since`` are in ``status``
        (a range of the (status, started_at) index)."""
        query = (
            select(func.count())
            .select_from(runs)
            .where(runs.c.status == status, runs.c.started_at >= naive(since))
        )
        return int(self.read(lambda c: c.execute(query).scalar_one()))

    # -- liveness ------------------------------------------------------------

    def heartbeat(self, now: datetime, beats: list[dict[str, Any]]) -> dict[int, RunState]:
        """Write ``heartbeat_at``, counters and progress of many runs, then read
        back their status and cancel request: one transaction, one UPDATE and
        one SELECT per 500 runs. The UPDATE is fenced (uid, still running); a
        run whose row is not running under its uid is absent from the answer
        unless its status says why."""

        def work(conn: Connection) -> dict[int, RunState]:
            states: dict[int, RunState] = {}
            for start in range(0, len(beats), BEAT_CHUNK):
                chunk = beats[start : start + BEAT_CHUNK]
                conn.execute(self._beat_update(now, chunk))
                owners = {beat["b_id"]: beat["b_uid"] for beat in chunk}
                query = select(
                    runs.c.id,
                    runs.c.uid,
                    runs.c.status,
                    runs.c.cancel_requested_at,
                    runs.c.cancel_reason,
                ).where(runs.c.id.in_(list(owners)))
                for row in conn.execute(query):
                    if owners[row.id] == row.uid:
                        states[row.id] = (row.status, row.cancel_requested_at, row.cancel_reason)
            return states

        return self.write(work) if beats else {}

    @staticmethod
    def _beat_update(now: datetime, beats: Sequence[dict[str, Any]]) -> Update:
        """One UPDATE for many runs, each getting its own counters and progress
        through a CASE on id (portable, unlike UPDATE ... FROM VALUES)."""

        def per_run(key: str, column: Any) -> Any:
            whens = {b["b_id"]: bindparam(None, b[key], type_=column.type) for b in beats}
            return case(whens, value=runs.c.id, else_=column)

        return (
            update(runs)
            .where(
                runs.c.id.in_([b["b_id"] for b in beats]),
                runs.c.uid.in_([b["b_uid"] for b in beats]),
                runs.c.status == RunStatus.RUNNING,
            )
            .values(
                heartbeat_at=naive(now),
                counters=per_run("b_counters", runs.c.counters),
                progress_total=per_run("b_total", runs.c.progress_total),
                progress_done=per_run("b_done", runs.c.progress_done),
            )
        )

    def stale_runs(
        self, heartbeat_cutoff: datetime, cancel_cutoff: datetime, limit: int
    ) -> list[tuple[int, str, str]]:
        """(id, reason, status) of active runs past their deadline; the reason is
        ``heartbeat`` (``heartbeat+cancel`` when a cancel is pending), ``pending``
        or ``cancel``. Each query is a range of an index, so the cost follows
        the number of stale runs."""
        hb = naive(heartbeat_cutoff)
        queries = [
            (
                "heartbeat",
                select(runs.c.id, runs.c.status).where(
                    runs.c.status == RunStatus.RUNNING, runs.c.heartbeat_at < hb
                ),
            ),
            (
                "heartbeat",
                select(runs.c.id, runs.c.status).where(
                    runs.c.status == RunStatus.RUNNING,
                    runs.c.heartbeat_at.is_(None),
                    runs.c.started_at < hb,
                ),
            ),
            (
                "pending",
                select(runs.c.id, runs.c.status).where(
                    runs.c.status == RunStatus.PENDING, runs.c.created_at < hb
                ),
            ),
            (
                "cancel",
                select(runs.c.id, runs.c.status).where(
                    runs.c.status == RunStatus.RUNNING,
                    runs.c.cancel_requested_at < naive(cancel_cutoff),
                ),
            ),
        ]

        def work(conn: Connection) -> list[tuple[int, str, str]]:
            found: dict[int, tuple[int, str, str]] = {}
            for reason, query in queries:
                query = query.add_columns(runs.c.cancel_requested_at)
                for row in conn.execute(query.order_by(runs.c.id).limit(limit)):
                    cancel = reason == "heartbeat" and row.cancel_requested_at is not None
                    found.setdefault(row.id, (row.id, reason + "+cancel" * cancel, row.status))
            return list(found.values())[:limit]

        return self.read(work)

    def transition_many(
        self,
        changes: list[
            tuple[int, RunStatus, frozenset[RunStatus], dict[str, Any], list[ColumnElement[bool]]]
        ],
    ) -> list[int]:
        """Several guarded transitions in one transaction; the ids changed.

        Where the database returns the rows an UPDATE changed, runs moving
        alike (same target, guard and values: the stale runs of one reap)
        change in one ``UPDATE ... RETURNING``, then their jobs and tallies in
        a batch each: a few statements per hundred runs, not four per run."""

        def each(conn: Connection) -> list[int]:
            return [
                run_id
                for run_id, target, allowed, values, where in changes
                if self._transition(conn, run_id, target, allowed, values, None, where)
            ]

        def alike(conn: Connection) -> list[int]:
            changed: list[Any] = []
            for ids, (target, allowed, values, where) in _alike(changes):
                changed += self._transition_set(conn, ids, target, allowed, values, where)
            self._finalize_jobs(conn, sorted(changed, key=lambda c: c[0]))
            done = {run_id for run_id, *_ in changed}
            return [run_id for run_id in dict.fromkeys(c[0] for c in changes) if run_id in done]

        return self.write(alike if self.engine.dialect.update_returning else each)

    @staticmethod
    def _transition_set(
        conn: Connection,
        ids: tuple[int, ...],
        target: RunStatus,
        allowed: frozenset[RunStatus],
        values: dict[str, Any],
        where: list[ColumnElement[bool]],
    ) -> list[tuple[int, RunStatus, dict[str, Any], Any]]:
        """One guarded UPDATE of many runs; (id, target, values, effect row)
        of each run it changed."""
        changes = dict(values, status=target.value)
        if target in TERMINAL:
            changes["lease_key"] = None
        stmt = (
            update(runs)
            .where(runs.c.id.in_(ids), runs.c.status.in_(sorted(allowed)), *where)
            .values(changes)
            .returning(runs.c.id, *_RUN_EFFECT.selected_columns)
        )
        return [(row.id, target, values, row) for row in conn.execute(stmt)]

    @staticmethod
    def _finalize_jobs(
        conn: Connection, changed: list[tuple[int, RunStatus, dict[str, Any], Any]]
    ) -> None:
        """The job updates and tallies of runs that became terminal, in id
        order (a job's failure streak counts its runs in order)."""
        jobs_batch: list[tuple[Update, list[dict[str, Any]]]] = []
        tallies = []
        for run_id, target, values, row in changed:
            if target not in TERMINAL:
                continue
            effect = JobEffect(
                row.job_key, row.window_end, row.moves_watermark, row.checkpoint, row.started_at
            )
            stmt, params = _job_change(run_id, target, values["finished_at"], effect)
            if jobs_batch and jobs_batch[-1][0] is stmt:
                jobs_batch[-1][1].append(params)
            else:
                jobs_batch.append((stmt, [params]))
            counted = {**row._mapping, **values}
            tallies.append(
                _tally_params(row.job_key, target, row.started_at, values["finished_at"], counted)
            )
        for stmt, batch in jobs_batch:
            conn.execute(stmt, batch)
        if tallies:
            conn.execute(_tally_upsert(conn.dialect.name), tallies)

    def insert_items_fenced(
        self, rows: list[dict[str, Any]], owners: dict[int, str]
    ) -> dict[int, str | None]:
        """Insert the items of the runs in ``owners`` (id -> uid) that are still
        running under that uid, with those runs' rows locked so that no reaper
        finalizes one mid-way; the rows of the others are dropped. Returns the
        runs that are not ours any more, with their status (None: gone)."""

        def work(conn: RawConnection) -> dict[int, str | None]:
            found = {row.id: row for row in self._lock_runs(conn, sorted(owners))}
            lost = {
                run_id: found[run_id].status if run_id in found else None
                for run_id, uid in owners.items()
                if run_id not in found
                or (found[run_id].uid, found[run_id].status) != (uid, RunStatus.RUNNING)
            }
            kept = [row for row in rows if row["run_id"] not in lost]
            if kept:
                conn.execute(_INSERT_ITEMS, kept)
            return lost

        return self.write_prepared(work) if rows else {}

    @staticmethod
    def _lock_runs(conn: RawConnection, ids: list[int]) -> list[Any]:
        """Lock the rows of ``ids`` in id order, like the heartbeat and the
        reaper, so that their row locks never deadlock."""
        if len(ids) == 1:
            return conn.execute(_LOCK_RUN, {"p_id": ids[0]}).all()
        rows: list[Any] = []
        for start in range(0, len(ids), BEAT_CHUNK):
            chunk = ids[start : start + BEAT_CHUNK]
            chunk += [chunk[-1]] * (BEAT_CHUNK - len(chunk))
            rows += conn.execute(_LOCK_RUNS, {f"p_id{i}": v for i, v in enumerate(chunk)})
        return rows

    def finalize_run(
        self,
        run_id: int,
        uid: str,
        target: RunStatus,
        values: dict[str, Any],
        effect: JobEffect,
        items: list[dict[str, Any]],
    ) -> bool | None:
        """The owner's final write: the fenced transition and, only if it
        happened, the run's last buffered items, in one transaction (so a
        retried attempt never repeats them and a fenced one writes nothing).
        Returns whether the transition happened; ``None`` if it did not on a
        retried attempt, after an earlier one that may have committed and
        lost only its answer (the caller re-reads to tell)."""
        tries = 0

        def work(conn: RawConnection) -> bool:
            nonlocal tries
            tries += 1
            allowed = ALLOWED_FROM[target]
            if not self._transition(conn, run_id, target, allowed, values, uid, (), effect):
                return False
            if items:
                conn.execute(_INSERT_ITEMS, items)
            return True

        changed = self.write_prepared(work)
        return None if not changed and tries > 1 else changed

    # -- items -----------------------------------------------------------------

    def insert_items(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.write(lambda c: c.execute(insert(run_items), rows))

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
        return [item_record(r) for r in self.read(lambda c: c.execute(query).all())]

    def item_group_counts(self, run_id: int) -> list[tuple[str, str | None, str, int]]:
        """(group, source, status, count) of a run's grouped items."""
        query = (
            select(run_items.c.group_key, run_items.c.source, run_items.c.status, func.count())
            .where(run_items.c.run_id == run_id, run_items.c.group_key.is_not(None))
            .group_by(run_items.c.group_key, run_items.c.source, run_items.c.status)
            .order_by(run_items.c.group_key, run_items.c.source, run_items.c.status)
        )
        rows = self.read(lambda c: c.execute(query).all())
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    # -- retention -----------------------------------------------------------

    def prune_batch(
        self, cutoff: datetime, after_id: int, limit: int, *, items_only: bool, dry_run: bool
    ) -> tuple[int | None, int, int]:
        """One batch of retention in one short transaction: choose up to
        ``limit`` prunable runs after ``after_id`` (terminal, finished before
        ``cutoff``, not a job's latest run or latest successful run), delete
        their items and, unless ``items_only``, the runs; on a dry run only
        count them. Returns (last id chosen, or None when none is left; runs;
        items)."""

        def work(conn: Connection) -> tuple[int | None, int, int]:
            ids: list[int] = list(conn.execute(_prunable(cutoff, after_id, limit)).scalars())
            if not ids:
                return None, 0, 0
            of_runs = run_items.c.run_id.in_(ids)
            if dry_run:
                count = select(func.count()).select_from(run_items).where(of_runs)
                return ids[-1], 0 if items_only else len(ids), conn.execute(count).scalar_one()
            items = conn.execute(delete(run_items).where(of_runs)).rowcount
            if items_only:
                return ids[-1], 0, items
            gone = delete(runs).where(runs.c.id.in_(ids), runs.c.status.in_(_TERMINAL))
            return ids[-1], conn.execute(gone).rowcount, items

        return self.read(work) if dry_run else self.write(work)

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
        self.write(lambda c: c.execute(dialects.upsert(c, provider_pauses, values, update_cols)))

    def delete_pause(self, provider: str) -> bool:
        stmt = delete(provider_pauses).where(provider_pauses.c.provider == provider)
        return bool(self.write(lambda c: c.execute(stmt).rowcount) > 0)

    def active_pauses(self, now: datetime, provider: str | None = None) -> list[PauseRecord]:
        query = select(provider_pauses).where(provider_pauses.c.paused_until > naive(now))
        if provider is not None:
            query = query.where(provider_pauses.c.provider == provider)
        query = query.order_by(provider_pauses.c.provider)
        return [pause_record(r) for r in self.read(lambda c: c.execute(query).all())]

    # -- tallies (metrics without scanning runs) ---------------------------------

    @staticmethod
    def _add_tally(
        conn: Conn,
        job_key: str,
        status: RunStatus,
        started: datetime | None,
        finished: datetime | None,
        items: dict[str, Any],
    ) -> None:
        """Add a run that just became terminal to its job's tallies (same
        transaction as the transition, so a tally never misses or repeats a run)."""
        params = _tally_params(job_key, status, started, finished, items)
        conn.execute(_tally_upsert(conn.dialect.name), params)

    def job_tallies(self) -> list[JobTally]:
        """Every job's tallies by terminal status, with the job's provider
        (a few rows per job, whatever the number of runs)."""
        query = (
            select(job_tallies, jobs.c.provider)
            .join(jobs, jobs.c.key == job_tallies.c.job_key)
            .order_by(job_tallies.c.job_key, job_tallies.c.status)
        )
        return [tally_record(r) for r in self.read(lambda c: c.execute(query).all())]

    # -- maintenance bookkeeping ------------------------------------------------

    def mark_maintenance(self, task: str, now: datetime, details: dict[str, Any]) -> None:
        values = {"task": task, "last_run_at": naive(now), "details": details}
        self.write(
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

        return self.write(work)

    def last_maintenance(self, task: str) -> tuple[datetime, dict[str, Any]] | None:
        query = select(maintenance).where(maintenance.c.task == task)
        row = self.read(lambda c: c.execute(query).first())
        if row is None:
            return None
        last = aware(row.last_run_at)
        assert last is not None
        return last, row.details or {}

    # -- conditions the ledger passes to transitions ----------------------------

    # The guards are memoized: every run of one reap gets the same guard
    # objects, so that transition_many changes them together (see _alike).
    @staticmethod
    @functools.lru_cache(maxsize=8)
    def heartbeat_older_than(cutoff: datetime) -> ColumnElement[bool]:
        hb = naive(cutoff)
        return or_(
            runs.c.heartbeat_at < hb,
            and_(
                runs.c.heartbeat_at.is_(None),
                func.coalesce(runs.c.started_at, runs.c.created_at) < hb,
            ),
        )

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def cancel_requested_before(cutoff: datetime) -> ColumnElement[bool]:
        return runs.c.cancel_requested_at < naive(cutoff)

    @staticmethod
    @functools.cache
    def cancel_pending(pending: bool) -> ColumnElement[bool]:
        column = runs.c.cancel_requested_at
        return column.is_not(None) if pending else column.is_(None)
