"""Issue 17: the runs table is the queue. A trigger queues a pending run that
holds no lease; a claim takes the lease with one conditional update, by
priority then age, within the job's concurrency and a provider's limit and
pause; a double trigger queues one run; an unclaimed run expires."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from runtrack import InvalidInput, JobBusy, JobNotFound, Ledger, ManualClock, RunStatus
from runtrack.errors import InvalidTransition, ProviderBusy
from runtrack.store.schema import runs

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def queue(db_url: str, clock: ManualClock) -> Iterator[Ledger]:
    with Ledger(db_url, clock=clock, heartbeat_interval=60) as ledger:
        ledger.ensure_job("q:a", provider="acme")
        ledger.ensure_job("q:b", provider="acme")
        ledger.ensure_job("q:c", provider="other")
        yield ledger


def test_a_trigger_queues_a_pending_run_that_holds_no_lease(queue: Ledger) -> None:
    queued = queue.trigger("q:a", params={"q": "python"}, by="user:ana")
    assert queued.status is RunStatus.PENDING
    assert queued.triggered_by == "user:ana"
    assert queued.params == {"q": "python"}
    assert queued.provider == "acme"
    with queue.run("q:a") as run:  # the job is free: a pending run holds no lease
        run.count("x")
    assert queue.get_run(queued.id).status is RunStatus.PENDING


def test_a_trigger_while_the_job_runs_queues_and_is_claimed_after(queue: Ledger) -> None:
    with queue.run("q:a"):
        queued = queue.trigger("q:a")
        assert queue.claim({"q:a": 1}) is None  # the running run holds the only slot
    run = queue.claim({"q:a": 1})
    assert run is not None and run.id == queued.id
    record = queue.get_run(run.id)
    assert record.status is RunStatus.RUNNING and record.worker_id == queue.worker_id
    queue.finish_run(run)
    assert queue.get_run(queued.id).status is RunStatus.SUCCESS


def test_a_double_trigger_queues_one_run(queue: Ledger) -> None:
    first = queue.trigger("q:a", params={"page": 1})
    assert queue.trigger("q:a", params={"page": 1}).id == first.id
    other = queue.trigger("q:a", params={"page": 2})
    assert other.id != first.id
    assert queue.trigger("q:a", params={"page": 1}, by="user:bob").id == first.id
    queue.finish_run(queue.start_run(run_id=first.id))
    assert queue.trigger("q:a", params={"page": 1}).id not in (first.id, other.id)


def test_claims_go_by_priority_then_age_and_respect_concurrency(queue: Ledger) -> None:
    older = queue.trigger("q:a", params={"n": 1})
    newer = queue.trigger("q:a", params={"n": 2})
    with queue.engine.begin() as conn:  # a backfill window (lower priority) queued first
        conn.execute(sa.update(runs).where(runs.c.id == older.id).values(priority=2))
    first = queue.claim({"q:a": 2})
    second = queue.claim({"q:a": 2})
    assert first is not None and second is not None
    assert (first.id, second.id) == (newer.id, older.id)
    third = queue.trigger("q:a", params={"n": 3})
    assert queue.claim({"q:a": 2}) is None  # two slots, both held
    queue.finish_run(first)
    claimed = queue.claim({"q:a": 2})
    assert claimed is not None and claimed.id == third.id
    queue.finish_run(second)
    queue.finish_run(claimed)


def test_a_claim_skips_paused_and_limited_providers(queue: Ledger) -> None:
    a = queue.trigger("q:a")
    b = queue.trigger("q:b")
    c = queue.trigger("q:c")
    jobs = {"q:a": 1, "q:b": 1, "q:c": 1}
    paused = queue.claim(jobs, paused=["acme"])
    assert paused is not None and paused.id == c.id
    queue.finish_run(paused)
    queue.limit_provider("acme", max_running=1)
    assert queue.provider_limits() == {"acme": 1}
    first = queue.claim(jobs)
    assert first is not None and first.id == a.id
    assert queue.claim(jobs) is None  # acme is at its limit
    with pytest.raises(ProviderBusy):
        queue.start_run(run_id=b.id)
    queue.limit_provider("acme", None)
    second = queue.claim(jobs)
    assert second is not None and second.id == b.id
    queue.finish_run(first)
    queue.finish_run(second)


def test_start_run_claims_a_pending_run_and_refuses_a_busy_job(queue: Ledger) -> None:
    pending = queue.create_run("q:a", params={"k": 1})
    assert pending.status is RunStatus.PENDING
    with queue.run("q:a"), pytest.raises(JobBusy):
        queue.start_run(run_id=pending.id)
    run = queue.start_run(run_id=pending.id)
    with pytest.raises(InvalidTransition):
        queue.start_run(run_id=pending.id)
    queue.finish_run(run)


def test_a_queued_live_window_starts_at_the_watermark_when_claimed(
    queue: Ledger, clock: ManualClock
) -> None:
    with queue.run("q:a"):
        pass
    mark = queue.watermark("q:a")
    queued = queue.trigger("q:a")
    clock.advance(timedelta(minutes=5))
    run = queue.claim({"q:a": 1})
    assert run is not None and run.window.start == mark and run.window.end == clock.now()
    queue.finish_run(run)
    assert queue.watermark("q:a") == clock.now()
    assert queue.get_run(queued.id).window.end == clock.now()


def test_a_fixed_window_moves_the_watermark_only_from_the_watermark(
    queue: Ledger, clock: ManualClock
) -> None:
    with queue.run("q:a"):
        pass
    mark = queue.watermark("q:a")
    assert mark is not None
    past = queue.trigger("q:a", window_start=mark - timedelta(days=2), window_end=mark)
    queue.finish_run(queue.start_run(run_id=past.id))
    assert queue.watermark("q:a") == mark  # the past never moves it
    ahead = queue.trigger("q:a", window_start=mark, window_end=mark + timedelta(minutes=1))
    clock.advance(timedelta(minutes=2))
    queue.finish_run(queue.start_run(run_id=ahead.id))
    assert queue.watermark("q:a") == mark + timedelta(minutes=1)


def test_a_rerun_repeats_job_params_and_window(queue: Ledger, clock: ManualClock) -> None:
    with queue.run("q:a"):
        pass
    mark = queue.watermark("q:a")
    assert mark is not None
    clock.advance(timedelta(minutes=10))
    failed = queue.start_run("q:a", params={"q": "x"})
    queue.finish_run(failed, "failed", error="boom")
    end = queue.get_run(failed.id).window_end
    assert queue.watermark("q:a") == mark  # the failed live window left a gap
    clock.advance(timedelta(minutes=10))
    again = queue.rerun(failed.id, by="user:ana")
    assert again.rerun_of == failed.id and again.params == {"q": "x"}
    assert (again.window_start, again.window_end) == (mark, end)
    assert again.triggered_by == "user:ana" and again.status is RunStatus.PENDING
    queue.finish_run(queue.start_run(run_id=again.id))
    assert queue.watermark("q:a") == end  # the re-run closed the gap


def test_an_unclaimed_run_expires_as_cancelled(db_url: str, clock: ManualClock) -> None:
    with Ledger(db_url, clock=clock, pending_ttl="1h") as ledger:
        ledger.ensure_job("q:old")
        queued = ledger.trigger("q:old")
        clock.advance(timedelta(minutes=59))
        assert ledger.reap() == []
        clock.advance(timedelta(minutes=2))
        assert ledger.reap() == [queued.id]
        record = ledger.get_run(queued.id)
        assert record.status is RunStatus.CANCELLED and record.error_type == "expired"
        assert ledger.claim({"q:old": 1}) is None


@pytest.mark.parametrize(
    ("job", "options", "field"),
    [
        ("q:nope", {}, None),
        ("", {}, "job"),
        ("q:a", {"params": ["not", "a", "mapping"]}, "params"),
        ("q:a", {"params": {"x": float("nan")}}, "params"),
        ("q:a", {"window_start": T0}, "window_start/window_end"),
        ("q:a", {"window_start": T0, "window_end": T0}, "window_end"),
        ("q:a", {"window_start": T0, "window_end": T0 - timedelta(1)}, "window_end"),
        ("q:a", {"by": ""}, "by"),
    ],
)
def test_bad_triggers_are_refused_before_anything_is_written(
    queue: Ledger, job: str, options: dict[str, object], field: str | None
) -> None:
    with pytest.raises((InvalidInput, JobNotFound)) as refused:
        queue.trigger(job, **options)  # type: ignore[arg-type]
    if field is None:
        assert isinstance(refused.value, JobNotFound)
    else:
        assert isinstance(refused.value, InvalidInput) and refused.value.field == field
    assert queue.count_runs() == 0


def test_direct_starts_count_against_a_provider_limit(queue: Ledger) -> None:
    queue.limit_provider("acme", max_running=2)
    first = queue.start_run("q:a", provider="acme")
    with queue.run("q:b", provider="acme"):
        with pytest.raises(ProviderBusy):
            queue.start_run("q:a", provider="acme", concurrency=2)
        with pytest.raises(ProviderBusy):
            queue.start_run(run_id=queue.trigger("q:a").id, concurrency=2)
        with queue.run("q:c", provider="other"):
            pass
    with pytest.raises(JobBusy):
        queue.start_run("q:a", provider="acme")  # the provider has room, the job has not
    queue.finish_run(first)
    assert queue.count_runs(job="q:a", status="running") == 0
    assert queue.count_runs(job="q:a", status="success") == 1


def test_claims_and_direct_starts_racing_for_slots(queue: Ledger) -> None:
    # Claimers and direct starts of one job race for its two slots: a claim
    # that loses its slot tries the other, else the next candidate; no error,
    # no run claimed twice or left behind.
    job, slots, rounds = "q:race", 2, 40
    queue.ensure_job(job, provider="acme")
    queued = {queue.trigger(job, params={"n": n}).id for n in range(rounds)}
    claimed: list[int] = []
    errors: list[BaseException] = []

    def claimer() -> None:
        while len(claimed) < rounds and not errors:
            try:
                run = queue.claim({job: slots})
                if run is not None:
                    claimed.append(run.id)
                    queue.finish_run(run)
            except BaseException as error:  # reported below
                errors.append(error)

    def starter() -> None:
        while len(claimed) < rounds and not errors:
            try:
                queue.finish_run(queue.start_run(job, concurrency=slots))
            except JobBusy:
                pass
            except BaseException as error:  # reported below
                errors.append(error)

    threads = [threading.Thread(target=f) for f in (claimer, claimer, claimer, starter)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(claimed) == sorted(queued)
    assert queue.count_runs(job=job, status="pending") == 0
    assert queue.count_runs(job=job, status="running") == 0


def test_a_claim_steps_over_many_busy_jobs_ahead(queue: Ledger) -> None:
    # Forty jobs whose only slot is held, each with a run queued ahead of a
    # claimable one: the claim's later, larger passes leave the busy jobs out
    # and find it (its first pass reads only the head of the queue).
    busy = [f"q:busy:{n:02d}" for n in range(40)]
    holders = []
    for job in busy:
        queue.ensure_job(job, provider="acme")
        holders.append(queue.start_run(job))
        queue.trigger(job)
    waiting = queue.trigger("q:b")
    claimed = queue.claim(dict.fromkeys([*busy, "q:b"], 1))
    assert claimed is not None and claimed.id == waiting.id
    assert queue.count_runs(status="pending") == len(busy)
    for run in [claimed, *holders]:
        queue.finish_run(run)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])  # SQLite: one writer at a time
def test_a_direct_start_racing_a_claim_for_its_slot(
    db_url: str, queue: Ledger, clock: ManualClock
) -> None:
    # A direct start commits the job's only slot between the claim's read of
    # the slots and its update: the update is refused, the claim finds the
    # job busy; nothing errs, the queued run waits.
    queued = queue.trigger("q:a")
    other = Ledger(db_url, clock=clock, heartbeat_interval=60, migrate=False)
    outcome: list[BaseException | int] = []

    def direct_start() -> None:
        try:
            outcome.append(other.start_run("q:a", provider="acme").id)
        except BaseException as error:  # reported below
            outcome.append(error)

    starter = threading.Thread(target=direct_start)

    def interleave(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE runs SET") and not starter.is_alive() and not outcome:
            starter.start()
            starter.join(20)  # the start commits the slot first

    sa.event.listen(queue.engine, "before_cursor_execute", interleave)
    try:
        claimed = queue.claim({"q:a": 1})
    finally:
        sa.event.remove(queue.engine, "before_cursor_execute", interleave)
    starter.join(20)
    other.close()
    assert claimed is None
    assert len(outcome) == 1 and isinstance(outcome[0], int)
    assert queue.get_run(queued.id).status is RunStatus.PENDING
    queue.finish_run(outcome[0])
    claimed = queue.claim({"q:a": 1})
    assert claimed is not None and claimed.id == queued.id
    queue.finish_run(claimed)
    assert queue.count_runs(job="q:a", status="running") == 0
