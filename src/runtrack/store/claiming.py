"""What a claim reads and checks (issue 17), as statements built once.

A claim reads the next pending runs of the jobs it serves together with each
run's provider limit, its job's state (watermark, checkpoint, last run) and
the lease slots its job holds, in one statement that goes to PostgreSQL with
the transaction's BEGIN (MySQL/MariaDB read the job state and the held slots
apart: see :func:`joins_jobs`). Every
statement here is built once per shape (the number of jobs served, of
providers and backfills left out) with a bound parameter per value, so that
the hot path's prepared execution (:mod:`runtrack.store.prepared`) can run
it, and the driver's server-side prepared statements reuse it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, exists, func, literal_column, or_, select, update
from sqlalchemy.sql.dml import Update

from runtrack.models import DEFAULT_MAX_CARRY_ATTEMPTS, OnPartial, RunStatus
from runtrack.store.rows import aware, aware_required
from runtrack.store.schema import backfills, carried, jobs, provider_limits, runs
from runtrack.store.statements import RUN_CHECKPOINT
from runtrack.store.values import ClaimedRun

__all__ = [
    "BATCHES",
    "CANDIDATE",
    "CLAIM",
    "CLAIMED",
    "JOB_STATE",
    "JOB_STATE_OF",
    "candidates",
    "candidates_of",
    "claimed_run",
    "free_slots",
    "held_slots",
    "holders_of",
    "joins_jobs",
    "keyed",
    "provider_room",
    "resume_checkpoint",
    "room_for",
    "slots",
]

#: Candidates read (and locked) per pass of a claim, each pass without the
#: jobs, providers and backfills that blocked the ones before. The first is
#: small: its head is nearly always claimable, and each row locked costs a
#: write (PostgreSQL: 8 rows lock in about half the time of 32). The later
#: ones step over up to 96 blocked jobs before the claim gives up.
BATCHES = (8, 32, 32, 32)
# Literals, not bound parameters: only then do PostgreSQL and SQLite see that
# a query fits the partial queue index (or the status index).
PENDING = runs.c.status == literal_column("'pending'")
RUNNING = runs.c.status == literal_column("'running'")
#: What a claim reads of a candidate: enough to claim it without reading it
#: again, and its provider's limit (``None``: the provider has none).
CANDIDATE = (
    runs.c.id,
    runs.c.job_key,
    runs.c.provider,
    runs.c.backfill_id,
    runs.c.window_start,
    runs.c.window_end,
    runs.c.moves_watermark,
    runs.c.retry_of,
    select(provider_limits.c.max_running)
    .where(provider_limits.c.provider == runs.c.provider)
    .scalar_subquery()
    .label("max_running"),
)
#: The job state a claim needs, read from the job's row (a direct start's
#: claim, and MySQL/MariaDB).
JOB_STATE = (
    jobs.c.watermark,
    jobs.c.checkpoint.label("job_checkpoint"),
    jobs.c.last_run_id,
    jobs.c.last_status,
    exists().where(carried.c.job_key == jobs.c.key).label("owes"),
)
#: The claim's one conditional update: ``lease_key`` and the run's start
#: values come as parameters (they name the columns set, as with any UPDATE).
CLAIM: Update = update(runs).where(runs.c.id == bindparam("p_id"), PENDING)
#: What a claim reads back of the run it claimed (a ``ClaimedRun``): the
#: handle's values only, for each column costs the driver a description.
CLAIMED = (
    runs.c.id,
    runs.c.uid,
    runs.c.job_key,
    runs.c.provider,
    runs.c.attempt,
    runs.c.params,
    runs.c.window_start,
    runs.c.window_end,
    runs.c.checkpoint,
    runs.c.moves_watermark,
    runs.c.on_partial,
    runs.c.max_carry_attempts,
    runs.c.started_at,
)

_LIMIT = select(provider_limits.c.max_running).where(
    provider_limits.c.provider == bindparam("p_provider")
)
_LIMIT_LOCKED = _LIMIT.with_for_update()
_PROVIDER_RUNNING = (
    select(func.count())
    .select_from(runs)
    .where(RUNNING, runs.c.provider == bindparam("p_provider"))
)
_CAP = select(backfills.c.max_parallel).where(backfills.c.id == bindparam("p_backfill"))
_CAP_LOCKED = _CAP.with_for_update()
_BACKFILL_RUNNING = (
    select(func.count())
    .select_from(runs)
    .where(runs.c.backfill_id == bindparam("p_backfill"), RUNNING)
)


def _params(prefix: str, count: int, column: Any) -> list[Any]:
    return [bindparam(f"{prefix}{i}", type_=column.type) for i in range(count)]


#: The same state, read with each candidate by correlated subqueries on the job's
#: primary key: a join would let the planner hash every queued run against
#: the jobs and sort them (35 ms at 10,000 queued), where this plan stays the
#: queue index's first rows, and the subqueries run only for the rows read.
_OF_CANDIDATE = jobs.c.key == runs.c.job_key
JOB_STATE_OF_CANDIDATE = (
    select(jobs.c.watermark).where(_OF_CANDIDATE).scalar_subquery().label("watermark"),
    select(jobs.c.checkpoint).where(_OF_CANDIDATE).scalar_subquery().label("job_checkpoint"),
    select(jobs.c.last_run_id).where(_OF_CANDIDATE).scalar_subquery().label("last_run_id"),
    select(jobs.c.last_status).where(_OF_CANDIDATE).scalar_subquery().label("last_status"),
    exists().where(carried.c.job_key == runs.c.job_key).label("owes"),
)
_HOLDER = runs.alias("holder")


def _held_slots(dialect: str) -> Any:
    """The lease slots the candidate's job holds, one string (keys have no
    control characters): its running runs, on the (job, status) index. The
    separator is a function call, not a parameter, so that the statement
    runs prepared."""
    if dialect == "postgresql":
        joined = func.string_agg(_HOLDER.c.lease_key, func.chr(10))
    else:  # SQLite
        joined = func.group_concat(_HOLDER.c.lease_key, func.char(10))
    return (
        select(joined)
        .where(
            _HOLDER.c.job_key == runs.c.job_key,
            _HOLDER.c.status == literal_column("'running'"),
            _HOLDER.c.lease_key.is_not(None),
        )
        .scalar_subquery()
        .label("held")
    )


#: One job's state, for a database that would lock it if joined (MariaDB
#: has no ``FOR UPDATE OF``).
JOB_STATE_OF = select(*JOB_STATE).where(jobs.c.key == bindparam("p_job"))


@functools.lru_cache(maxsize=128)
def candidates_of(
    served: int, skipped: int, capped: int, *, dialect: str, batch: int
) -> Select[Any]:
    """A claim's first read, for ``served`` job keys (``k0``...), leaving out
    ``skipped`` providers (``p0``...) and ``capped`` backfills (``b0``...):
    the next pending runs of these jobs, priority then age, on the partial
    queue index (locked, skipping those another claimer holds, where the
    database can), ``batch`` of them, each with its job's state and the slots
    its job holds where :func:`joins_jobs`."""
    query = select(*CANDIDATE).where(
        PENDING, runs.c.job_key.in_(_params("k", served, runs.c.job_key))
    )
    if joins_jobs(dialect):
        query = query.add_columns(*JOB_STATE_OF_CANDIDATE, _held_slots(dialect))
    if skipped:
        query = query.where(
            or_(
                runs.c.provider.is_(None),
                runs.c.provider.not_in(_params("p", skipped, runs.c.provider)),
            )
        )
    if capped:
        query = query.where(
            or_(
                runs.c.backfill_id.is_(None),
                runs.c.backfill_id.not_in(_params("b", capped, runs.c.backfill_id)),
            )
        )
    query = query.order_by(runs.c.priority, runs.c.id).limit(batch)
    if dialect == "sqlite":
        return query
    return query.with_for_update(skip_locked=True, of=runs)


@functools.lru_cache(maxsize=128)
def holders_of(served: int) -> Select[Any]:
    """The lease slots held by the ``served`` jobs (``k0``...): their running
    runs (only a running run holds a slot)."""
    return select(runs.c.job_key, runs.c.lease_key, runs.c.id).where(
        RUNNING,
        runs.c.lease_key.is_not(None),
        runs.c.job_key.in_(_params("k", served, runs.c.job_key)),
    )


def keyed(prefix: str, values: Iterable[Any]) -> dict[str, Any]:
    """Values as the numbered parameters of :func:`candidates_of`."""
    return {f"{prefix}{i}": value for i, value in enumerate(values)}


def candidates(job_keys: Iterable[str], dialect: str) -> Select[Any]:
    """The first read of a claim over these jobs, its values bound (what the
    benchmark explains)."""
    keys = sorted(job_keys)
    query = candidates_of(len(keys), 0, 0, dialect=dialect, batch=BATCHES[0])
    return query.params(keyed("k", keys))


def joins_jobs(dialect: str) -> bool:
    """Whether a claim reads job states with its candidates: not on
    MySQL/MariaDB, where a locking read might lock the jobs' rows too, which
    would hold every finish of those jobs until the claim commits."""
    return dialect not in ("mysql", "mariadb")


def claimed_run(row: Any) -> ClaimedRun:
    """The run a claim read back (the columns of :data:`CLAIMED`)."""
    m = row._mapping
    return ClaimedRun(
        m["id"],
        m["uid"],
        m["job_key"],
        m["provider"],
        m["attempt"],
        m["params"],
        aware(m["window_start"]),
        aware(m["window_end"]),
        m["checkpoint"],
        bool(m["moves_watermark"]),
        OnPartial(m["on_partial"] or OnPartial.CARRY),
        m["max_carry_attempts"] or DEFAULT_MAX_CARRY_ATTEMPTS,
        aware_required(m["started_at"]),
    )


def slots(job: str, concurrency: int) -> list[str]:
    """The lease slots of a job: one unique ``lease_key`` per run at once."""
    return [f"{job}#{i}" for i in range(concurrency)]


def provider_room(conn: Any, provider: str | None, known: Any, dialect: str) -> int | None:
    """``None`` if the provider may start one more run, else its limit (its
    limit row stays locked until the claim commits, so that two claimers
    count in turn). ``known`` is the limit the candidate read (``None``: the
    provider has none: no statement), or anything else to look it up here."""
    if provider is None or known is None:
        return None
    lock = _LIMIT if dialect == "sqlite" else _LIMIT_LOCKED
    limit = conn.execute(lock, {"p_provider": provider}).scalar()
    if limit is None:
        return None
    running = conn.execute(_PROVIDER_RUNNING, {"p_provider": provider}).scalar()
    return int(limit) if running >= limit else None


def room_for(conn: Any, backfill_id: int, dialect: str) -> bool:
    """Whether one more run of this backfill may start (its ``max_parallel``),
    inside a claim's transaction: a backfill without a cap costs one primary
    key read; with one, its row is locked (so two claimers count in turn)
    and its running runs counted on ``ix_runs_backfill``."""
    params = {"p_backfill": backfill_id}
    limit = conn.execute(_CAP, params).scalar()
    if limit is None:
        return True
    if dialect != "sqlite":
        conn.execute(_CAP_LOCKED, params).scalar()
    return bool(conn.execute(_BACKFILL_RUNNING, params).scalar() < limit)


def resume_checkpoint(conn: Any, retry_of: int | None, window_start: Any, job: Any) -> Any:
    """The checkpoint a run starts from, whether started directly or claimed:
    that of the run it retries (``retry_of``), else that of the job's last
    run if it failed or was cancelled over the same window start (a failed
    backfill window does not hand its cursor to a regular run). So a run that
    fails again before saving one hands it on to the next."""
    if retry_of is not None:
        return conn.execute(RUN_CHECKPOINT, {"p_id": retry_of}).scalar()
    if job.last_status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        return None
    last = conn.execute(RUN_CHECKPOINT, {"p_id": job.last_run_id}).first()
    if last is None or last.window_start != window_start:
        return None
    return last.checkpoint


def held_slots(candidate: Any) -> list[tuple[str, int | None]]:
    """The slots a joined candidate's job holds (the runs holding them unread)."""
    return [(lease, None) for lease in (candidate.held or "").split("\n") if lease]


def free_slots(all_slots: Sequence[str], held: Iterable[str]) -> list[str]:
    taken = set(held)
    return [slot for slot in all_slots if slot not in taken]
