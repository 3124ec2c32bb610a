"""The queue in the store (issue 17): pending runs, claimed by workers.

A pending run holds no lease. A worker claims one with one conditional
``pending -> running`` update that also takes a lease slot of its job (the
unique ``lease_key`` keeps a job within its concurrency, whoever starts it)
and, for a provider with a limit, counts the provider's running runs while
holding its limit row, so that two claimers on two hosts cannot both take the
last place. Candidates are read ``FOR UPDATE SKIP LOCKED`` where the database
has it, so claimers pass each other instead of queueing on one row.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from runtrack.models import RunStatus
from runtrack.store.base import Transactions
from runtrack.store.claiming import (
    BATCHES,
    CANDIDATE,
    CLAIM,
    CLAIMED,
    JOB_STATE,
    JOB_STATE_OF,
    PENDING,
    candidates_of,
    claimed_run,
    free_slots,
    held_slots,
    holders_of,
    joins_jobs,
    keyed,
    provider_room,
    resume_checkpoint,
    room_for,
    slots,
)
from runtrack.store.labels import labels_of, write_labels
from runtrack.store.new_run import run_row
from runtrack.store.prepared import RawConnection
from runtrack.store.rows import naive
from runtrack.store.schema import jobs, provider_limits, runs
from runtrack.store.statements import INSERT_RUN, start_at_watermark
from runtrack.store.values import ClaimedRun, NewRun

__all__ = ["CHANNEL", "CLAIM_RETURNING", "Claim", "QueueStore"]

#: The PostgreSQL channel a new pending run is announced on (its job key).
CHANNEL = "runtrack_queue"
#: A limit not read yet (a direct start's candidate): looked up under lock.
UNKNOWN = object()
#: The claim's update, the claimed run back (PostgreSQL, SQLite).
CLAIM_RETURNING = CLAIM.returning(*CLAIMED)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim found. ``run`` is set when this call claimed it; else
    ``why`` says what stood in the way (``not_pending``, ``busy``,
    ``provider_limit``, ``paused``, ``backfill_full``) with the job's lease
    holders or the limit."""

    run: ClaimedRun | None
    job_checkpoint: Any = None
    owes: bool = False
    why: str | None = None
    status: RunStatus | None = None
    holders: tuple[int, ...] = ()
    limit: int = 0


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A run inserted by the claim's own transaction (a direct start)."""

    id: int
    job_key: str
    provider: str | None
    backfill_id: int | None
    window_start: datetime | None
    window_end: datetime | None
    moves_watermark: bool
    retry_of: int | None
    max_running: Any = UNKNOWN


class QueueStore:
    """Pending runs: enqueue (deduplicated), claim, provider limits, expiry."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    # -- enqueue -------------------------------------------------------------------

    def enqueue(
        self,
        new: NewRun,
        *,
        dedupe: bool,
    ) -> tuple[int, bool] | None:
        """Insert the pending run ``new`` and its labels; with ``dedupe``, a
        pending run of the job with the same params, window and labels is
        returned instead. (id, inserted), or ``None`` if the job has no row."""
        values, labels, job = run_row(new), new.labels, new.job

        def work(conn: Connection) -> tuple[int, bool] | None:
            # The job's row serializes the triggers of one job (SQLite: BEGIN
            # IMMEDIATE serializes every writer already).
            lock = select(jobs.c.key).where(jobs.c.key == job)
            if self.tx.dialect != "sqlite":
                lock = lock.with_for_update()
            if conn.execute(lock).first() is None:
                return None
            if dedupe:
                same = self._same_pending(conn, values, labels or {})
                if same is not None:
                    return same, False
            key = conn.execute(INSERT_RUN, values).inserted_primary_key
            assert key is not None
            write_labels(conn, int(key[0]), labels)
            self._announce(conn, job)
            return int(key[0]), True

        return self.tx.write(work, read_committed=True)

    @staticmethod
    def _same_pending(
        conn: Connection, values: dict[str, Any], labels: Mapping[str, str]
    ) -> int | None:
        query = (
            select(runs.c.id, runs.c.params, runs.c.window_start, runs.c.window_end)
            .where(runs.c.job_key == values["job_key"], runs.c.status == RunStatus.PENDING)
            .order_by(runs.c.id)
        )
        for row in conn.execute(query):
            window = (row.window_start, row.window_end)
            same = (row.params or None) == (values["params"] or None)
            same = same and window == (values["window_start"], values["window_end"])
            if same and labels_of(conn, [row.id]).get(row.id, {}) == labels:
                return int(row.id)
        return None

    def _announce(self, conn: Connection, job: str) -> None:
        """Wake idle PostgreSQL workers when the transaction commits."""
        if self.tx.dialect == "postgresql":
            conn.execute(text("SELECT pg_notify(:channel, :job)"), {"channel": CHANNEL, "job": job})

    # -- claim ---------------------------------------------------------------------

    def claim_next(
        self,
        concurrency: Mapping[str, int],
        paused: Sequence[str],
        stamp: dict[str, Any],
        clock: Callable[[], datetime],
    ) -> Claim | None:
        """Claim the first pending run (priority, then age) of the jobs in
        ``concurrency`` (job -> its lease slots) whose job has a free slot and
        whose provider is neither paused nor at its limit; ``None`` if none.

        On PostgreSQL a claim is two round trips: BEGIN, the candidates and
        the slots their jobs hold; then the update in a savepoint and COMMIT.
        The run starts at ``clock()`` as each attempt reads it: a claim retried
        through an outage does not date its start back to before it."""

        def work(conn: Any) -> Claim | None:
            at = _naive(clock())
            full: set[str] = set()
            skip = set(paused)
            capped: set[int] = set()  # backfills at their max_parallel
            # A batch whose every run is blocked (a capped backfill's windows,
            # a busy job's queue) must not hide the runs behind it: the next
            # pass leaves out what blocked this one.
            for batch in BATCHES:
                keys = sorted(job for job in concurrency if job not in full)
                if not keys:
                    return None
                rows, held = self._candidates(conn, keys, skip, capped, batch)
                for row in rows:
                    if row.provider in skip or row.job_key in full or row.backfill_id in capped:
                        continue
                    if row.backfill_id is not None and not room_for(
                        conn, row.backfill_id, self.tx.dialect
                    ):
                        capped.add(row.backfill_id)
                        continue
                    state = row if self._joined else self._job_state(conn, row.job_key)
                    job_slots = slots(row.job_key, concurrency[row.job_key])
                    holders = held_slots(row) if self._joined else held.get(row.job_key, [])
                    claim = self._take(conn, row, state, holders, job_slots, stamp, at)
                    if claim.run is not None:
                        return claim
                    if claim.why == "not_pending":
                        return None  # its locked row moved: (PostgreSQL) committed already
                    if claim.why == "provider_limit":
                        skip.add(row.provider)
                    else:
                        full.add(row.job_key)
                if len(rows) < batch:
                    return None  # every pending run of these jobs was seen
            return None

        if self.tx.pipelines:  # on the driver's connection, statements sent together
            return self.tx.write_prepared(work)
        return self.tx.write(work, read_committed=True)

    def _candidates(
        self, conn: Any, keys: list[str], skip: set[Any], capped: set[int], batch: int
    ) -> tuple[list[Any], dict[str, list[tuple[str, int | None]]]]:
        """The claim's read: the next candidates, each with its job's state
        and held slots where joined (one round trip with the transaction's
        BEGIN on PostgreSQL); on MySQL/MariaDB the slots these jobs hold are
        read apart."""
        providers = sorted(p for p in skip if p is not None)
        query = candidates_of(
            len(keys),
            len(providers),
            len(capped),
            dialect=self.tx.dialect,
            batch=batch,
        )
        params = {**keyed("k", keys), **keyed("p", providers), **keyed("b", sorted(capped))}
        if self._joined:  # each candidate brings its job's state and held slots
            return conn.execute(query, params).all(), {}
        found = conn.execute(query, params).all()
        held: dict[str, list[tuple[str, int | None]]] = {}
        for holder in conn.execute(holders_of(len(keys)), keyed("k", keys)).all():
            held.setdefault(holder.job_key, []).append((holder.lease_key, int(holder.id)))
        return found, held

    @staticmethod
    def _job_state(conn: Any, job: str) -> Any:
        return conn.execute(JOB_STATE_OF, {"p_job": job}).one()

    def start_now(
        self,
        new: NewRun,
        job_slots: list[str],
        stamp: dict[str, Any],
        clock: Callable[[], datetime],
    ) -> Claim:
        """Insert the run ``new`` (and its labels) and claim it in one
        transaction: a direct start of a job whose provider has a limit.
        Nothing is written unless the job has a free slot and the provider room."""
        values, labels = run_row(new), new.labels

        def work(conn: Connection) -> Claim:
            at = _naive(clock())  # each attempt's own (see claim_next)
            key = conn.execute(INSERT_RUN, values).inserted_primary_key
            assert key is not None
            write_labels(conn, int(key[0]), labels)
            row = _Candidate(
                int(key[0]),
                values["job_key"],
                values["provider"],
                values.get("backfill_id"),
                values["window_start"],
                values["window_end"],
                values["moves_watermark"],
                values["retry_of"],
            )
            state, held = _job_and_holders(conn, row.job_key, job_slots)
            claim = self._take(conn, row, state, held, job_slots, stamp, at)
            if claim.run is None:
                raise _Refused(claim)  # rolls the insert back
            return claim

        try:
            return self.tx.write(work, read_committed=True)
        except _Refused as refused:
            return refused.claim

    def claim_run(
        self, run_id: int, concurrency: int, stamp: dict[str, Any], clock: Callable[[], datetime]
    ) -> Claim:
        """Claim the pending run ``run_id`` (``start_run(run_id=...)``)."""
        query = select(*CANDIDATE, runs.c.status).where(runs.c.id == run_id)
        if self.tx.dialect != "sqlite":
            query = query.with_for_update(of=runs)

        def work(conn: Connection) -> Claim:
            row = conn.execute(query).first()
            if row is None or row.status != RunStatus.PENDING:
                status = RunStatus(row.status) if row is not None else None
                return Claim(None, why="not_pending", status=status)
            # A backfill's window: its max_parallel, counted under the
            # backfill's row lock as claim_next does (the run's row first).
            if row.backfill_id is not None and not room_for(conn, row.backfill_id, self.tx.dialect):
                return Claim(None, why="backfill_full")
            job_slots = slots(row.job_key, concurrency)
            state, held = _job_and_holders(conn, row.job_key, job_slots)
            return self._take(conn, row, state, held, job_slots, stamp, _naive(clock()))

        return self.tx.write(work, read_committed=True)

    def _take(
        self,
        conn: Any,
        row: Any,
        state: Any,
        held: Sequence[tuple[str, int | None]],
        job_slots: list[str],
        stamp: dict[str, Any],
        now: datetime,
    ) -> Claim:
        """Move the candidate ``row`` to running in a free slot of its job
        (``state``; ``held``: the slots taken, and by which runs), if its
        provider has room: the claim's one conditional update. The job's row
        is not locked: claimers would hold it while they go on to the next
        candidate, deadlock with each other and with finishes and reaps, and a
        worker cut off mid-claim would stall them all until the server noticed.
        So two claimers (or a claim and a direct start) may pick the same free
        slot: the loser's update is refused by the unique lease key inside a
        savepoint, and it tries the job's next free slot (random order makes
        that rare), else calls the job busy and goes on to the next candidate.
        On SQLite no one can: BEGIN IMMEDIATE holds every other writer off."""
        free = free_slots(job_slots, (lease for lease, _ in held))
        if not free:
            return Claim(None, why="busy", holders=tuple(i for _, i in held if i is not None))
        limit = provider_room(conn, row.provider, row.max_running, self.tx.dialect)
        if limit is not None:
            return Claim(None, why="provider_limit", limit=limit)
        values = dict(stamp, status=RunStatus.RUNNING.value, started_at=now, heartbeat_at=now)
        if row.window_start is None:  # a live window: from the watermark to now
            values["window_end"] = row.window_end if row.window_end is not None else now
            # A queued end before the watermark is raised to it, not refused:
            # the run was accepted when it was queued.
            start_at_watermark(values, state.watermark, fixed_end=False)
        else:  # a fixed window moves the watermark only if it starts there
            values["moves_watermark"] = bool(
                row.moves_watermark and row.window_start == state.watermark
            )
        start = values.get("window_start", row.window_start)
        values["checkpoint"] = resume_checkpoint(conn, row.retry_of, start, state)
        for slot in random.sample(free, len(free)):
            try:
                record = self._update(conn, dict(values, lease_key=slot, p_id=row.id))
            except IntegrityError:
                continue  # another claimer or a direct start took this slot first
            if record is None:
                return Claim(None, why="not_pending")
            return Claim(claimed_run(record), state.job_checkpoint, bool(state.owes))
        return Claim(None, why="busy")

    def _update(self, conn: Any, params: dict[str, Any]) -> Any:
        """The claim's update of a pending run into a slot: the claimed row,
        or ``None`` if the run is no longer pending. A taken slot raises
        IntegrityError, in a savepoint, so that PostgreSQL's transaction
        survives it (SQLite needs none). On PostgreSQL the savepoint, the
        update and COMMIT go in one round trip: the claim ends there."""
        if isinstance(conn, RawConnection):  # claim_next on PostgreSQL
            with conn.pipelined(commit=True), conn.begin_nested():
                claimed = conn.execute(CLAIM_RETURNING, params)
            return claimed.first()
        with nullcontext() if self.tx.dialect == "sqlite" else conn.begin_nested():
            if self._returning:
                return conn.execute(CLAIM_RETURNING, params).first()
            if conn.execute(CLAIM, params).rowcount != 1:
                return None
        return conn.execute(select(*CLAIMED).where(runs.c.id == params["p_id"])).one()

    @functools.cached_property
    def _returning(self) -> bool:
        """UPDATE ... RETURNING (PostgreSQL, SQLite; not MariaDB): the claimed
        row comes back with the update instead of a read after it."""
        return bool(self.tx.engine.dialect.update_returning)

    @functools.cached_property
    def _joined(self) -> bool:
        return joins_jobs(self.tx.dialect)

    # -- provider limits -----------------------------------------------------------

    def set_provider_limit(self, provider: str, max_running: int | None, now: datetime) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(provider_limits).where(provider_limits.c.provider == provider))
            if max_running is not None:
                conn.execute(
                    provider_limits.insert().values(
                        provider=provider, max_running=max_running, updated_at=_naive(now)
                    )
                )

        self.tx.write(work, read_committed=True)

    def provider_limits(self) -> dict[str, int]:
        query = select(provider_limits.c.provider, provider_limits.c.max_running)
        return {p: int(n) for p, n in self.tx.read(lambda c: c.execute(query).all())}

    def running_of_provider(self, provider: str) -> int:
        query = (
            select(func.count())
            .select_from(runs)
            .where(runs.c.status == RunStatus.RUNNING, runs.c.provider == provider)
        )
        return int(self.tx.read(lambda c: c.execute(query).scalar_one()))

    def pending_of(self, job_keys: Sequence[str]) -> int:
        """How many pending runs these jobs have (the queue index)."""
        query = select(func.count()).select_from(runs).where(PENDING, runs.c.job_key.in_(job_keys))
        return int(self.tx.read(lambda c: c.execute(query).scalar_one()))


class _Refused(Exception):
    """A start that may not happen: its transaction is rolled back."""

    def __init__(self, claim: Claim) -> None:
        super().__init__(claim.why)
        self.claim = claim


def _naive(now: datetime) -> datetime:
    at = naive(now)
    assert at is not None
    return at


def _job_and_holders(
    conn: Connection, job: str, job_slots: list[str]
) -> tuple[Any, list[tuple[str, int]]]:
    """The job's state for a start, and the runs holding its slots, in one
    read (a row per holder)."""
    query = (
        select(*JOB_STATE, runs.c.lease_key, runs.c.id.label("holder"))
        .select_from(jobs.outerjoin(runs, runs.c.lease_key.in_(job_slots)))
        .where(jobs.c.key == job)
    )
    found = conn.execute(query).all()
    held = [(r.lease_key, int(r.holder)) for r in found if r.lease_key is not None]
    return found[0], held
