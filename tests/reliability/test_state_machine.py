"""The state machine: hypothesis drives start / count / item / heartbeat /
cancel / finish / reap / prune / time in random orders against the real
store (a hand-moved clock decides staleness), and after every step checks the
invariants of DESIGN.md against a model:

- a terminal run never changes again (until retention deletes it);
- a job never has more running runs than its concurrency (a pending run is
  queued and holds no lease, issue 17);
- the watermark never moves backwards, and moves only when a run ends
  success or partial (to that run's window end);
- retention keeps every active run, each job's latest run and latest
  successful run, and the job's state;
- counters are persisted: a finished run's are all of them, a reaped run's
  those of its last heartbeat; items of a finished run are all there;
- only stale runs (or runs stuck after a cancel) are reaped, and pending runs
  only once their pending TTL is over (they expire, cancelled).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from reliability_support import Figures, Sizes
from sqlalchemy import Engine

from runtrack import (
    InvalidTransition,
    JobBusy,
    LeaseLost,
    Ledger,
    ManualClock,
    RunCancelled,
    RunNotCancellable,
    RunStatus,
)
from runtrack.run import Run
from runtrack.store import dialects

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("timed")]

STALE = timedelta(seconds=60)
PENDING_TTL = timedelta(hours=24)
GRACE = timedelta(seconds=30)
ACTIVE = {RunStatus.PENDING, RunStatus.RUNNING}
_examples = itertools.count()


@dataclass
class ModelRun:
    """What the model knows about one run."""

    id: int
    job: str
    status: RunStatus
    created: datetime
    beat: datetime  # last heartbeat (or start) that reached the database
    window_end: datetime | None
    handle: Run | None = None
    counters: dict[str, int] = field(default_factory=dict)
    beat_counters: dict[str, int] = field(default_factory=dict)
    items: int = 0
    cancel_at: datetime | None = None
    final: tuple[Any, ...] | None = None  # (status, finished_at, error_type, counters)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, engine: Engine, tally: dict[str, int]) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.ledger = Ledger(
            engine=engine,
            migrate=False,
            clock=self.clock,
            heartbeat_interval=59,  # no background ticks (STALE is 60 s): heartbeats are steps
            stale_after=STALE,
            cancel_grace=GRACE,
            item_batch_size=3,
        )
        prefix = f"sm{next(_examples)}"
        self.jobs = {f"{prefix}:single": 1, f"{prefix}:pair": 2}
        self.runs: dict[int, ModelRun] = {}
        self.pruned: set[int] = set()
        self.watermarks: dict[str, datetime | None] = dict.fromkeys(self.jobs)
        self.tally = tally
        self.tally["examples"] += 1

    def teardown(self) -> None:
        self.ledger.close()

    # -- helpers ---------------------------------------------------------------------

    def _live(self) -> list[int]:
        return sorted(i for i, r in self.runs.items() if r.handle and r.status in ACTIVE)

    def _pending(self) -> list[int]:
        return sorted(i for i, r in self.runs.items() if r.status is RunStatus.PENDING)

    def _pick(self, data: st.DataObject, ids: list[int]) -> ModelRun:
        return self.runs[data.draw(st.sampled_from(ids))]

    def _ended(self, run: ModelRun, status: RunStatus) -> None:
        """The run became terminal: remember its end, move the model watermark."""
        record = self.ledger.get_run(run.id)
        assert record.status is status
        run.status, run.handle = status, None
        run.final = (record.status, record.finished_at, record.error_type, record.counters)
        if status in (RunStatus.SUCCESS, RunStatus.PARTIAL) and run.window_end is not None:
            old = self.watermarks[run.job]
            self.watermarks[run.job] = max(old, run.window_end) if old else run.window_end
        self.tally["terminal"] += 1

    # -- rules -------------------------------------------------------------------------

    def _holders(self, key: str) -> list[ModelRun]:
        """The job's lease holders: its running runs (a pending run holds none)."""
        return [r for r in self.runs.values() if r.job == key and r.status is RunStatus.RUNNING]

    @rule(job=st.integers(0, 1), pending=st.booleans())
    def start(self, job: int, pending: bool) -> None:
        key, concurrency = list(self.jobs.items())[job]
        now = self.clock.now()
        if pending:  # queued: never busy, whatever runs
            record = self.ledger.create_run(key, concurrency=concurrency)
            self.runs[record.id] = ModelRun(record.id, key, RunStatus.PENDING, now, now, None)
            self.tally["runs"] += 1
            return
        holders = self._holders(key)
        try:
            handle = self.ledger.start_run(key, concurrency=concurrency)
        except JobBusy:
            assert len(holders) >= concurrency, "JobBusy with a free slot"
            self.tally["busy"] += 1
            return
        finally:
            self._reaped_by_start(holders, concurrency)
        self.runs[handle.id] = ModelRun(
            handle.id, key, RunStatus.RUNNING, now, now, handle.window.end, handle
        )
        self.tally["runs"] += 1

    def _reaped_by_start(self, holders: list[ModelRun], concurrency: int) -> None:
        """A start reaps the job's stale holders when every slot is taken."""
        gone = {r.id for r in holders if self.ledger.get_run(r.id).status not in ACTIVE}
        if len(holders) >= concurrency:
            self._reaped(gone, holders)
        assert not gone or len(holders) >= concurrency, "reaped with a free slot"

    @precondition(lambda self: self._pending())
    @rule(data=st.data())
    def start_pending(self, data: st.DataObject) -> None:
        run = self._pick(data, self._pending())
        concurrency = self.jobs[run.job]
        holders = self._holders(run.job)
        try:
            run.handle = self.ledger.start_run(run_id=run.id, concurrency=concurrency)
        except JobBusy:
            assert len(holders) >= concurrency, "JobBusy with a free slot"
            self.tally["busy"] += 1
            return
        finally:
            self._reaped_by_start(holders, concurrency)
        run.status, run.beat = RunStatus.RUNNING, self.clock.now()
        run.window_end = run.handle.window.end

    @precondition(lambda self: self._live())
    @rule(data=st.data(), name=st.sampled_from(["pages", "offers"]), n=st.integers(1, 5))
    def count(self, data: st.DataObject, name: str, n: int) -> None:
        run = self._pick(data, self._live())
        if run.status is RunStatus.PENDING:
            return
        try:
            assert run.handle is not None
            run.handle.count(name, n)
        except RunCancelled:
            assert run.cancel_at is not None
            return self._finish(run, RunStatus.CANCELLED)
        run.counters[name] = run.counters.get(name, 0) + n

    @precondition(lambda self: self._live())
    @rule(data=st.data(), status=st.sampled_from(["success", "skipped", "error"]))
    def item(self, data: st.DataObject, status: str) -> None:
        run = self._pick(data, self._live())
        if run.status is RunStatus.PENDING:
            return
        try:
            assert run.handle is not None
            run.handle.item(f"item-{run.items}", status)
        except RunCancelled:
            return self._finish(run, RunStatus.CANCELLED)
        run.items += 1

    @rule()
    def heartbeat(self) -> None:
        self.ledger.heartbeat_now()
        now = self.clock.now()
        for run in self.runs.values():
            if run.handle is not None and run.status is RunStatus.RUNNING:
                run.beat, run.beat_counters = now, dict(run.counters)

    @rule(seconds=st.sampled_from([1, 20, 31, 61, 3600, 86400 * 2]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.runs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        run = self._pick(data, sorted(self.runs))
        if run.id in self.pruned:
            return
        try:
            record = self.ledger.cancel(run.id, by="machine")
        except RunNotCancellable:
            assert run.status not in ACTIVE
            return
        assert run.status in ACTIVE
        if run.status is RunStatus.PENDING:
            self._ended(run, RunStatus.CANCELLED)
        elif run.cancel_at is None:
            run.cancel_at = record.cancel_requested_at

    @precondition(lambda self: self._live())
    @rule(
        data=st.data(),
        status=st.sampled_from(["success", "partial", "failed", "cancelled"]),
    )
    def finish(self, data: st.DataObject, status: str) -> None:
        run = self._pick(data, self._live())
        if run.status is RunStatus.RUNNING:
            self._finish(run, RunStatus(status))

    def _finish(self, run: ModelRun, status: RunStatus) -> None:
        assert run.handle is not None
        self.ledger.finish_run(run.handle, status)
        self._ended(run, status)
        record = self.ledger.get_run(run.id)
        assert record.counters == run.counters, "counters dropped at finalization"
        assert sum(record.items.values()) == run.items, "items dropped at finalization"

    @rule()
    def reap(self) -> None:
        reaped = set(self.ledger.reap())
        self._reaped(reaped, [r for r in self.runs.values() if r.status in ACTIVE])

    def _reaped(self, reaped: set[int], candidates: list[ModelRun]) -> None:
        """Exactly the stale or stuck candidates were reaped, each with the
        counters of its last heartbeat."""
        now = self.clock.now()
        for run in candidates:
            if run.status is RunStatus.PENDING:
                stale = run.created < now - PENDING_TTL  # expired: nobody claimed it
            else:
                stale = run.beat < now - STALE
            stuck = run.cancel_at is not None and run.cancel_at < now - GRACE
            stuck = stuck and run.status is RunStatus.RUNNING
            assert (run.id in reaped) == (stale or stuck), f"run {run.id} reaped wrongly"
            if run.id in reaped:
                record = self.ledger.get_run(run.id)
                assert record.counters == run.beat_counters, "counters of the last heartbeat"
                self._ended(run, record.status)
                self.tally["reaped"] += 1

    @rule(older_than=st.sampled_from([3600, 86400]))
    def prune(self, older_than: int) -> None:
        cutoff = self.clock.now() - timedelta(seconds=older_than)
        self.ledger.prune(older_than)
        for run in self.runs.values():
            old = run.final is not None and run.final[1] < cutoff
            if old and run.id not in self.pruned and self.ledger.store.runs.get_run(run.id) is None:
                self.pruned.add(run.id)
                self.tally["pruned"] += 1

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def the_database_agrees_with_the_model(self) -> None:
        for key, concurrency in self.jobs.items():
            rows = {r.id: r for r in self.ledger.list_runs(job=key, limit=1000).items}
            running = [r for r in rows.values() if r.status is RunStatus.RUNNING]
            assert len(running) <= concurrency, f"{key}: {len(running)} running runs"
            job = self.ledger.get_job(key)
            self._check_job(key, job, rows)
            for run in (r for r in self.runs.values() if r.job == key):
                self._check_run(run, rows.get(run.id))

    def _check_run(self, run: ModelRun, row: Any) -> None:
        if row is None:
            assert run.id in self.pruned and run.final is not None, f"run {run.id} lost"
            return
        assert row.status is run.status, f"run {run.id}: {row.status} != {run.status}"
        if run.final is not None:
            now = (row.status, row.finished_at, row.error_type, row.counters)
            assert now == run.final, f"terminal run {run.id} changed"

    def _check_job(self, key: str, job: Any, rows: dict[int, Any]) -> None:
        ended = [r for r in self.runs.values() if r.job == key and r.final is not None]
        if job is None:
            assert not any(r.job == key for r in self.runs.values()), f"job {key} lost"
            return
        assert job.watermark == self.watermarks[key], f"{key}: watermark moved wrongly"
        latest = max((r.id for r in ended), default=None)
        assert job.last_run_id == latest
        good = [r.id for r in ended if r.status is RunStatus.SUCCESS]
        assert job.last_success_run_id == max(good, default=None)
        for kept in (job.last_run_id, job.last_success_run_id):
            assert kept is None or kept in rows, f"retention deleted run {kept} of {key}"


def test_random_operations_keep_the_invariants(
    db_url: str, backend: str, sizes: Sizes, figures: Figures
) -> None:
    tally: dict[str, int] = dict.fromkeys(
        ("examples", "runs", "terminal", "reaped", "pruned", "busy"), 0
    )
    engine = dialects.make_engine(db_url)  # shared by the examples' ledgers
    run_state_machine_as_test(
        lambda: LedgerMachine(engine, tally),
        settings=settings(
            max_examples=sizes.machine_examples,
            stateful_step_count=sizes.machine_steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )
    engine.dispose()
    figures.add("state_machine", backend, **tally)


def test_a_finish_after_a_reap_is_refused(db_url: str) -> None:
    """The end of a reaped run belongs to the reaper: the owner's late finish
    raises LeaseLost and changes nothing (the machine's reap rule relies on it)."""
    clock = ManualClock()
    with Ledger(db_url, clock=clock, heartbeat_interval=59, stale_after=STALE) as ledger:
        run = ledger.start_run("sm:late")
        clock.advance(STALE + timedelta(seconds=1))
        assert ledger.reap() == [run.id]
        with pytest.raises((LeaseLost, InvalidTransition)):
            ledger.finish_run(run, RunStatus.SUCCESS)
        assert ledger.get_run(run.id).status is RunStatus.FAILED
