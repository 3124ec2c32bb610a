"""Guarantee 4: by default a job has at most one active run, whoever starts
it; ``concurrency=N`` allows N. A second start fails fast with ``JobBusy``
naming the holders; a stale or stuck holder is reaped first, not waited on.
(Two real processes contending: ``tests/process``.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from runtrack import JobBusy, Ledger, ManualClock, RunStatus

STALE = timedelta(seconds=30)
GRACE = timedelta(seconds=5)


class Boom(Exception):
    pass


def test_second_start_fails_fast_naming_the_holder(ledger: Ledger) -> None:
    with ledger.run("lease:one") as holder:
        began = time.monotonic()
        with pytest.raises(JobBusy) as busy, ledger.run("lease:one"):
            pytest.fail("a second run of the job started")
        assert time.monotonic() - began < 5  # no waiting on the holder
        assert busy.value.active_run_ids == [holder.id]
        assert (busy.value.job, busy.value.concurrency) == ("lease:one", 1)
        assert f"active run(s) {holder.id}" in str(busy.value)
        assert ledger.count_runs(job="lease:one") == 1  # the refused start wrote nothing
    with ledger.run("lease:one"):  # free again once the holder ended
        pass


def test_concurrency_allows_that_many_active_runs(ledger: Ledger) -> None:
    holders = [ledger.start_run("lease:three", concurrency=3) for _ in range(3)]
    with pytest.raises(JobBusy) as busy:
        ledger.start_run("lease:three", concurrency=3)
    assert sorted(busy.value.active_run_ids) == sorted(h.id for h in holders)
    assert busy.value.concurrency == 3
    ledger.finish_run(holders[1])
    fourth = ledger.start_run("lease:three", concurrency=3)  # takes the freed slot
    assert len(ledger.active_runs("lease:three")) == 3
    for run in (holders[0], holders[2], fourth):
        ledger.finish_run(run)


def test_every_way_of_ending_frees_the_lease(ledger: Ledger) -> None:
    with ledger.run("lease:ends"):
        pass
    with pytest.raises(Boom), ledger.run("lease:ends"):
        raise Boom
    with ledger.run("lease:ends") as run:
        ledger.cancel(run.id)
        run.check_cancelled()
    ledger.cancel(ledger.create_run("lease:ends").id)
    ledger.finish_run(ledger.start_run("lease:ends"), "partial")
    statuses = [r.status for r in ledger.list_runs(job="lease:ends").items]
    assert statuses == [
        RunStatus.PARTIAL,
        RunStatus.CANCELLED,
        RunStatus.CANCELLED,
        RunStatus.FAILED,
        RunStatus.SUCCESS,
    ]
    with ledger.run("lease:ends"):
        pass


def test_a_pending_run_takes_the_lease_when_it_starts(ledger: Ledger) -> None:
    """Issue 17: a pending run is queued, holding no lease; starting it takes one."""
    pending = ledger.create_run("lease:pending")
    running = ledger.start_run("lease:pending")  # the queued run does not block it
    with pytest.raises(JobBusy) as busy:
        ledger.start_run(run_id=pending.id)
    assert busy.value.active_run_ids == [running.id]
    ledger.finish_run(running)
    started = ledger.start_run(run_id=pending.id)  # starting it takes the lease
    with pytest.raises(JobBusy):
        ledger.start_run("lease:pending")
    ledger.finish_run(started)
    ledger.finish_run(ledger.start_run("lease:pending"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def frozen(db_url: str, clock: ManualClock) -> Iterator[Ledger]:
    """A holder that stopped heartbeating (its clock and thread stand still)."""
    with Ledger(
        db_url, clock=clock, heartbeat_interval=29, stale_after=STALE, cancel_grace=GRACE
    ) as opened:
        yield opened


def later(db_url: str, clock: ManualClock, by: timedelta) -> Ledger:
    """Another worker, ``by`` after the holder's last heartbeat."""
    moved = ManualClock(clock.now() + by)
    return Ledger(db_url, clock=moved, heartbeat_interval=29, stale_after=STALE, cancel_grace=GRACE)


def test_a_stale_holder_is_reaped_and_the_new_run_starts(
    db_url: str, frozen: Ledger, clock: ManualClock
) -> None:
    holder = frozen.start_run("lease:stale")
    holder.count("pages", 3)
    frozen.heartbeat_now()
    # At the threshold the lease is still the holder's.
    with later(db_url, clock, STALE) as worker, pytest.raises(JobBusy):
        worker.start_run("lease:stale")
    with later(db_url, clock, STALE + timedelta(seconds=1)) as worker:
        with worker.run("lease:stale") as run:
            run.count("pages")
        reaped = worker.get_run(holder.id)
        assert (reaped.status, reaped.error_type) == (RunStatus.FAILED, "heartbeat_timeout")
        assert reaped.counters == {"pages": 3}
        assert worker.get_run(run.id).status is RunStatus.SUCCESS


def test_a_holder_stuck_after_a_cancel_is_reaped_and_the_new_run_starts(
    db_url: str, frozen: Ledger, clock: ManualClock
) -> None:
    holder = frozen.start_run("lease:stuck")
    frozen.cancel(holder.id)  # it never notices (no tick, never touches the handle)
    with later(db_url, clock, GRACE + timedelta(seconds=1)) as worker:
        with worker.run("lease:stuck"):
            pass
        reaped = worker.get_run(holder.id)
        assert (reaped.status, reaped.error_type) == (RunStatus.CANCELLED, "cancel_timeout")


def test_a_stale_holder_with_a_pending_cancel_ends_cancelled(
    db_url: str, frozen: Ledger, clock: ManualClock
) -> None:
    holder = frozen.start_run("lease:stale-cancelled")
    with later(db_url, clock, timedelta(seconds=1)) as operator:
        operator.cancel(holder.id, by="ops")
    with later(db_url, clock, STALE + timedelta(seconds=1)) as worker:
        assert worker.reap() == [holder.id]
        reaped = worker.get_run(holder.id)
        assert (reaped.status, reaped.error_type) == (RunStatus.CANCELLED, "heartbeat_timeout")
        assert reaped.cancel_requested_by == "ops"


def test_ledgers_starting_one_job_at_the_same_instant_get_one_run(db_url: str) -> None:
    ledgers = [Ledger(db_url, heartbeat_interval=60, migrate=False) for _ in range(4)]
    rounds, winners = 25, 0
    try:
        with ThreadPoolExecutor(len(ledgers)) as pool:
            for i in range(rounds):
                barrier = threading.Barrier(len(ledgers))
                job = f"lease:rush:{i}"

                def start(
                    ledger: Ledger, barrier: threading.Barrier = barrier, job: str = job
                ) -> int:
                    barrier.wait()
                    try:
                        ledger.start_run(job)
                    except JobBusy:
                        return 0
                    return 1

                won = sum(pool.map(start, ledgers))
                assert won == 1
                assert len(ledgers[0].active_runs(job)) == 1
                winners += won
    finally:
        for ledger in ledgers:
            ledger.close()
    assert winners == rounds
