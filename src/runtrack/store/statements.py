"""Prebuilt statements shared by the parts of the store.

Hot-path statements are built once and take their values as parameters, so
SQLAlchemy's compiled cache is hit and nothing is built per run.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    CompoundSelect,
    Select,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert, Update

from runtrack.failures import failure_note
from runtrack.models import (
    ACTIVE,
    GOOD,
    TERMINAL,
    CarryState,
    ItemStatus,
    RunStatus,
)
from runtrack.store import dialects
from runtrack.store.prepared import RawConnection
from runtrack.store.rows import (
    naive,
    strip_cell,
)
from runtrack.store.schema import (
    DURATION_BOUNDS,
    RECENT_CHARS,
    carried,
    job_tallies,
    jobs,
    run_items,
    runs,
)
from runtrack.store.values import JobEffect, WindowBeforeWatermark

T = TypeVar("T")
#: What the statements shared by the hot path and the others run on.
Conn = Connection | RawConnection
ACTIVE_NAMES = sorted(ACTIVE)
#: Runs per heartbeat statement: keeps the bind parameters of one batched
#: UPDATE (four per run) far below every driver's limit.
BEAT_CHUNK = 500
TERMINAL_NAMES = sorted(TERMINAL)


def start_at_watermark(row: dict[str, Any], watermark: datetime | None, fixed_end: bool) -> None:
    """Start a run's or a claim's window at the job's watermark (naive UTC)."""
    row["window_start"] = watermark
    if watermark is not None and row["window_end"] < watermark:
        if fixed_end:
            raise WindowBeforeWatermark(watermark)
        # Another machine's clock ran ahead of ours: an empty window, never an
        # inverted one.
        row["window_end"] = watermark


def prunable_query(cutoff: datetime, after_id: int, limit: int) -> Select[Any]:
    keep = union(
        select(jobs.c.last_run_id).where(jobs.c.last_run_id.is_not(None)),
        select(jobs.c.last_success_run_id).where(jobs.c.last_success_run_id.is_not(None)),
        # The run each owed carried entry came from (guarantee 6; not given up).
        select(carried.c.first_run_id).where(carried.c.state == CarryState.OWED.value),
    )
    return (
        select(runs.c.id)
        .where(
            runs.c.id > after_id,
            # "Not active" rather than "IN (terminal)": the same runs, but no
            # status index tempts the planner, which walks the primary key from
            # after_id and stops at the limit instead of sorting every
            # terminal run of the table on each batch.
            runs.c.status.not_in(ACTIVE_NAMES),
            runs.c.finished_at < naive(cutoff),
            runs.c.id.not_in(keep),
        )
        .order_by(runs.c.id)
        .limit(limit)
    )


def effect_of(row: Any) -> JobEffect:
    """The job effect of a run read back by RUN_EFFECT (no handle at hand)."""
    return JobEffect(
        row.job_key,
        row.window_end,
        row.moves_watermark,
        row.checkpoint,
        row.started_at,
        hold=row.on_partial == "hold",
    )


# Hot-path statements are built once and take their values as parameters:
# they run prepared on the driver's connection (see store/prepared.py), which
# needs long-lived statement objects, and no expression is built per run.
INSERT_RUN = insert(runs)
INSERT_ITEMS = insert(run_items)
RUN_CHECKPOINT = select(runs.c.checkpoint, runs.c.window_start).where(
    runs.c.id == bindparam("p_id")
)
# Lock one run's row for an item flush (SQLite: BEGIN IMMEDIATE already serializes).
LOCK_RUN = (
    select(runs.c.id, runs.c.uid, runs.c.status)
    .where(runs.c.id == bindparam("p_id"))
    .with_for_update()
)
# The same for many runs at once: a fixed IN list, so that it is prepared once
# and a tick locks 500 runs per statement (a short list repeats its last id).
LOCK_RUNS = (
    select(runs.c.id, runs.c.uid, runs.c.status)
    .where(runs.c.id.in_([bindparam(f"p_id{i}") for i in range(BEAT_CHUNK)]))
    .order_by(runs.c.id)
    .with_for_update()
)


@functools.cache
def start_run_stmt(
    columns: tuple[str, ...], explicit_window: bool, history: bool = False
) -> Insert:
    """A run's start in one statement: ``INSERT ... SELECT`` from its job's
    row, whose watermark starts the window (unless ``explicit_window``) and
    bounds its end from below (see :func:`start_at_watermark`), with the
    checkpoint of the job's last run if it failed or was cancelled over the
    same window start (see ``claiming.resume_checkpoint``). It returns the
    window, that checkpoint and the job's own checkpoint (and, with
    ``history``, the job's volume history for its guard). ``columns`` are
    the given values, window start (if explicit) and end included."""
    given = {name: bindparam(name, type_=runs.c[name].type) for name in columns}
    start: Any = given["window_start"] if explicit_window else jobs.c.watermark
    end: Any = given["window_end"]
    if not explicit_window:
        end = case((jobs.c.watermark > end, jobs.c.watermark), else_=end)
    last = runs.alias("resumed")
    resumed = (
        select(last.c.checkpoint)
        .where(
            last.c.id == jobs.c.last_run_id,
            or_(
                jobs.c.last_status == RunStatus.FAILED.value,
                jobs.c.last_status == RunStatus.CANCELLED.value,
            ),
            last.c.window_start.is_not_distinct_from(start),
        )
        .correlate(jobs)
        .scalar_subquery()
    )
    derived = ("window_start", "window_end", "checkpoint")
    names = [name for name in columns if name not in derived]
    source = select(*(given[name] for name in names), start, end, resumed).where(
        jobs.c.key == given["job_key"]
    )
    # Written out: SQLAlchemy does not correlate a subquery in RETURNING with
    # the row being inserted.
    job_checkpoint = literal_column(
        '(SELECT jobs.checkpoint FROM jobs WHERE jobs."key" = runs.job_key)',
        type_=jobs.c.checkpoint.type,
    )
    owes = literal_column(
        "(EXISTS (SELECT 1 FROM carried WHERE carried.job_key = runs.job_key))", type_=Boolean()
    )
    returned = [
        runs.c.id,
        runs.c.window_start,
        runs.c.window_end,
        runs.c.checkpoint,
        job_checkpoint.label("job_checkpoint"),
        owes.label("owes"),
    ]
    if history:
        volume = literal_column(
            '(SELECT jobs.volume_history FROM jobs WHERE jobs."key" = runs.job_key)',
            type_=jobs.c.volume_history.type,
        )
        returned.append(volume.label("volume_history"))
    return (
        insert(runs)
        .from_select([*names, *derived], source, include_defaults=False)
        .returning(*returned)
    )


JOB_FOR_START = select(
    jobs.c.watermark,
    jobs.c.checkpoint,
    jobs.c.last_run_id,
    jobs.c.last_status,
    exists().where(carried.c.job_key == jobs.c.key).label("owes"),
    jobs.c.volume_history,
).where(jobs.c.key == bindparam("p_job"))
RUN_EFFECT = select(
    runs.c.job_key,
    runs.c.window_end,
    runs.c.moves_watermark,
    runs.c.checkpoint,
    runs.c.started_at,
    runs.c.items_success,
    runs.c.items_not_found,
    runs.c.items_skipped,
    runs.c.items_error,
    runs.c.on_partial,
    runs.c.max_carry_attempts,
).where(runs.c.id == bindparam("p_id"))


def _counted_items() -> dict[str, Any]:
    """A run's item tallies, counted from its stored item rows by subqueries
    correlated with the run being updated (each a range of a run_items index)."""
    mine = run_items.c.run_id == runs.c.id
    success = run_items.c.status == ItemStatus.SUCCESS.value
    values: dict[str, Any] = {
        f"items_{status.value}": select(func.count())
        .where(mine, run_items.c.status == status.value)
        .scalar_subquery()
        for status in ItemStatus
    }
    grouped = func.count(run_items.c.group_key) > 0  # NULL when no item had a group
    seen = func.count(run_items.c.group_key.distinct())
    found = func.count(case((success, run_items.c.group_key)).distinct())
    for column, amount in (("groups_found", found), ("groups_missing", seen - found)):
        values[column] = select(case((grouped, amount))).where(mine).scalar_subquery()
    return values


#: SET clauses of a run that ends without its owner (the reaper, a finish by
#: id): only the owner holds the tallies in memory, so they are counted from
#: the item rows stored, which is what the run's items will ever be (item
#: writes are fenced: none lands once the run is terminal).
COUNTED_ITEMS = _counted_items()


def counts_given(values: Mapping[str, Any]) -> bool:
    """Whether a terminal transition's values carry the item tallies (the
    owner's finalization does; every other end counts the stored rows)."""
    return "items_success" in values


@functools.cache
def update_run_stmt(with_uid: bool, allowed: tuple[str, ...], count_items: bool = False) -> Update:
    """``UPDATE runs SET <the parameters named like columns> WHERE id AND
    status IN (allowed) [AND uid]``: the conditional transition; with
    ``count_items``, also the item tallies counted from the stored rows."""
    stmt = update(runs).where(
        runs.c.id == bindparam("p_id"),
        or_(*(runs.c.status == status for status in allowed)),
    )
    if count_items:
        stmt = stmt.values(COUNTED_ITEMS)
    return stmt.where(runs.c.uid == bindparam("p_uid")) if with_uid else stmt


@functools.cache
def job_update(
    status: RunStatus,
    moves_watermark: bool,
    checkpoint: bool,
    counts: bool = True,
    volume: bool = False,
) -> Update:
    """The job-state update of a terminal run, one statement per outcome kind.
    ``counts``: a failure that counts toward the streak (not a retried or
    rate-limited attempt, see :func:`runtrack.failures.failure_note`).
    ``volume``: a guarded run's new volume history and anomaly (or none)."""
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
    # The strip logs every finish, in the order runs finish (a late reaped
    # run included): the new cell goes first, the oldest falls off the end.
    cell = bindparam("j_cell", type_=jobs.c.recent_runs.type)
    changes["recent_runs"] = func.substr(
        cell + func.coalesce(jobs.c.recent_runs, ""), 1, RECENT_CHARS
    )
    streak = jobs.c.consecutive_failures
    if status is RunStatus.FAILED and counts:
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
    if volume:
        changes["volume_history"] = bindparam("j_volume", type_=jobs.c.volume_history.type)
        changes["volume_anomaly"] = bindparam("j_anomaly", type_=jobs.c.volume_anomaly.type)
    if status is RunStatus.SUCCESS:
        newer_success = or_(
            jobs.c.last_success_run_id.is_(None), jobs.c.last_success_run_id <= run_id
        )
        changes["last_success_at"] = case((newer_success, finished), else_=jobs.c.last_success_at)
        changes["last_success_run_id"] = case(
            (newer_success, run_id), else_=jobs.c.last_success_run_id
        )
    return update(jobs).where(jobs.c.key == bindparam("j_key")).values(changes)


TALLY_ITEMS = ("items_success", "items_not_found", "items_skipped", "items_error")


@functools.cache
def tally_upsert(dialect: str) -> Insert:
    added = [c.name for c in job_tallies.c if not c.primary_key]
    return dialects.upsert_add(dialect, job_tallies, added)


def group_alike(
    changes: Sequence[tuple[int, RunStatus, frozenset[RunStatus], dict[str, Any], tuple[Any, ...]]],
) -> list[tuple[tuple[int, ...], tuple[RunStatus, frozenset[RunStatus], dict[str, Any], Any]]]:
    """Changes grouped by what they do: target, allowed statuses, values and
    guards (equal guards, see :mod:`runtrack.store.guards`), in the order
    given. Groups may share runs (a busy job's holder is offered each kind of
    change in turn): a list, not a dict keyed by the runs."""
    groups: dict[Any, tuple[list[int], Any]] = {}
    for run_id, target, allowed, values, where in changes:
        key = (target, allowed, repr(sorted(values.items())), where)
        groups.setdefault(key, ([], (target, allowed, values, where)))[0].append(run_id)
    return [(tuple(ids), change) for ids, change in groups.values()]


def job_change(
    run_id: int,
    status: RunStatus,
    finished: datetime,
    effect: JobEffect,
    values: Mapping[str, Any] | None = None,
) -> tuple[Update, dict[str, Any]]:
    """The job update of a run that just became terminal (``values``: its
    final values), and its parameters."""
    given = values or {}
    note = failure_note(status, given.get("error_type"), given.get("retried"))
    moves = effect.moves_watermark and effect.window_end is not None and status in GOOD
    moves = moves and not (effect.hold and status is RunStatus.PARTIAL)
    checkpoint = effect.checkpoint is not None and status in GOOD
    params: dict[str, Any] = {
        "j_key": effect.job_key,
        "j_run_id": run_id,
        "j_status": status.value,
        "j_finished": finished,
        "j_cell": strip_cell(run_id, status, effect.started_at, finished, note),
    }
    if moves:
        params["j_end"] = naive(effect.window_end)
    if checkpoint:
        params["j_checkpoint"] = effect.checkpoint
    volume = effect.volume if status in GOOD else None
    if volume is not None:
        params["j_volume"], params["j_anomaly"] = volume
    return job_update(status, moves, checkpoint, note is None, volume is not None), params


def tally_params(
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
        **_NO_DURATION,
    }
    for column in TALLY_ITEMS:
        params[column] = int(items.get(column) or 0)
    start, end = naive(started), naive(finished)
    if start is not None and end is not None:
        seconds = max((end - start).total_seconds(), 0.0)
        params["duration_count"] = 1
        params["duration_sum"] = seconds
        for bound, column in _BUCKETS:
            if seconds <= bound:
                params[column] = 1
                break
    return params


# Built once: every finalization binds them.
_BUCKETS = tuple((bound, f"le_{bound}") for bound in DURATION_BOUNDS)
_NO_DURATION = {column: 0 for _, column in _BUCKETS}


RECENT_CHUNK = 100


@functools.lru_cache(maxsize=16)
def recent_runs_union(branches: int, limit: int) -> Select[Any] | CompoundSelect[Any]:
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
