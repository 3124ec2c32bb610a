"""Issue 23's gaps: nothing is carried forever, each owed entry is handed to
one run at a time, and the partial policy of ``@ledger.tracked``.

Every good (success or partial) run of a job that ends while the job owes
counts an attempt on the entries it was offered, whether or not its code read
``run.carried``; concurrent runs of one job get disjoint entries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from runtrack import CarryState, Ledger, ManualClock, Run, RunNotFound, RunStatus
from runtrack.alerts import IncidentKind

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def manual(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Ledger, ManualClock]]:
    monkeypatch.delenv("RUNTRACK_NOTIFY", raising=False)
    clock = ManualClock(T0)
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as opened:
        yield opened, clock


def step(clock: ManualClock) -> None:
    clock.advance(timedelta(minutes=1))


def test_an_entry_no_run_reads_is_given_up_and_its_run_pruned(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    with ledger.run("offer:never-read") as owing:
        now = ledger.now()
        owing.failed_slice(now - timedelta(hours=2), now - timedelta(hours=1), "502")
    attempts = []
    for _ in range(8):  # runs that never read run.carried
        step(clock)
        with ledger.run("offer:never-read") as run:
            run.item("page-1", "success")
        (entry,) = ledger.carried("offer:never-read").slices
        attempts.append((entry.attempts, entry.state))
    assert (
        attempts
        == [(2, CarryState.OWED), (3, CarryState.OWED), (4, CarryState.OWED)]
        + [(5, CarryState.GIVEN_UP)] * 5
    )
    assert ledger.get_run(run.id).status is RunStatus.SUCCESS
    (opened,) = ledger.check().opened
    assert opened.kind is IncidentKind.GIVEN_UP and opened.job == "offer:never-read"
    clock.advance(timedelta(days=100))
    ledger.prune("90d")
    with pytest.raises(RunNotFound):  # given up: its run is no longer kept
        ledger.get_run(owing.id)
    assert ledger.carried("offer:never-read").slices[0].state is CarryState.GIVEN_UP


def test_a_failed_run_counts_no_attempt_and_a_new_entry_waits_for_the_next_run(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    with ledger.run("offer:fails") as first:
        first.item("a", "error")
    step(clock)
    with pytest.raises(RuntimeError), ledger.run("offer:fails"):
        raise RuntimeError("down")
    assert [i.attempts for i in ledger.carried("offer:fails").items] == [1]
    step(clock)
    # A run that started before the entry existed was not offered it.
    early = ledger.start_run("offer:fails", concurrency=2)
    step(clock)
    with ledger.run("offer:fails", concurrency=2) as other:
        other.item("b", "error")
    step(clock)
    ledger.finish_run(early)
    # "a": one attempt by the run that ended first (the overlapping one does
    # not count it again); "b": added after the early run started.
    items = ledger.carried("offer:fails").items
    assert [(i.key, i.attempts) for i in items] == [("a", 2), ("b", 1)]


def test_concurrent_runs_are_handed_disjoint_entries_and_count_once(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    with ledger.run("offer:pair") as first:
        for key in ("x", "y"):
            first.item(key, "error")
    step(clock)
    one = ledger.start_run("offer:pair", concurrency=2)
    two = ledger.start_run("offer:pair", concurrency=2)
    handed_one = [i.key for i in one.carried.items]
    handed_two = [i.key for i in two.carried.items]
    assert handed_one == ["x", "y"] and handed_two == []  # the first to read holds both
    for run in (one, two):  # both fail x again: one attempt, counted by its holder
        run.item("x", "error", error=f"again by {run.id}")
    ledger.finish_run(two)
    ledger.finish_run(one)
    items = {i.key: i for i in ledger.carried("offer:pair").items}
    assert {k: i.attempts for k, i in items.items()} == {"x": 2, "y": 2}
    assert items["x"].last_error == f"again by {one.id}"
    assert items["x"].last_run == one.id
    step(clock)
    # Released at the end: the next pair splits what a holder leaves behind.
    three = ledger.start_run("offer:pair", concurrency=2)
    four = ledger.start_run("offer:pair", concurrency=2)
    assert [i.key for i in three.carried.items] == ["x", "y"]
    three.item("x", "success")
    ledger.finish_run(three)
    assert [i.key for i in four.carried.items] == ["y"]  # three holds nothing now
    ledger.finish_run(four)
    (left,) = ledger.carried("offer:pair").items
    assert (left.key, left.attempts) == ("y", 4)  # handed to three, then to four


def test_a_run_alone_holds_everything_and_a_later_one_gets_only_what_is_new(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    with ledger.run("offer:alone") as first:
        first.item("x", "error")
    step(clock)
    alone = ledger.start_run("offer:alone", concurrency=2)
    assert [i.key for i in alone.carried.items] == ["x"]  # no other run: takes it all
    step(clock)
    with ledger.run("offer:alone", concurrency=2) as other:
        assert other.carried.items == ()  # x is the first run's while it runs
        other.item("y", "error")
    step(clock)
    later = ledger.start_run("offer:alone", concurrency=2)
    assert [i.key for i in later.carried.items] == ["y"]  # new since the first took its share
    ledger.finish_run(later)
    ledger.finish_run(alone)
    items = {i.key: i.attempts for i in ledger.carried("offer:alone").items}
    assert items == {"x": 2, "y": 2}  # each counted once, by the run that held it
    step(clock)
    with ledger.run("offer:alone") as next_one:  # alone again: both, both released
        assert [i.key for i in next_one.carried.items] == ["x", "y"]


def test_runs_reading_at_the_same_time_never_share_an_entry(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, _ = manual
    with ledger.run("offer:race") as first:
        for n in range(30):
            first.item(f"k{n:02d}", "error")
    everything = {i.key for i in ledger.carried("offer:race").items}
    for _ in range(10):
        barrier = threading.Barrier(3)
        handed: dict[int, set[str]] = {}
        threads = [
            threading.Thread(target=_take, args=(ledger, barrier, handed, n)) for n in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        parts = list(handed.values())
        assert len(parts) == 3
        assert sum(len(p) for p in parts) == len(everything)  # disjoint
        assert set().union(*parts) == everything
    assert {i.attempts for i in ledger.carried("offer:race").items} == {1}


def _take(ledger: Ledger, barrier: threading.Barrier, handed: dict[int, set[str]], n: int) -> None:
    barrier.wait()
    run = ledger.start_run("offer:race", concurrency=3)
    handed[n] = {i.key for i in run.carried.items}
    barrier.wait()  # all have read before any ends
    ledger.finish_run(run, RunStatus.CANCELLED)  # resolves and counts nothing


def _tracked(ledger: Ledger, job: str, policy: str, fail_page: bool) -> int:
    @ledger.tracked(job, on_partial=policy)
    def fetch(run: Run) -> int:
        now = ledger.now()
        if fail_page:
            run.failed_slice(now - timedelta(minutes=30), now - timedelta(minutes=20), "502")
        run.item("ok", "success")
        return run.id

    return fetch()


@pytest.mark.parametrize("policy", ["hold", "advance"])
def test_tracked_takes_the_partial_policy(manual: tuple[Ledger, ManualClock], policy: str) -> None:
    ledger, clock = manual
    job = f"offer:tracked-{policy}"
    _tracked(ledger, job, policy, fail_page=False)
    before = ledger.watermark(job)
    step(clock)
    run_id = _tracked(ledger, job, policy, fail_page=True)
    assert ledger.get_run(run_id).status is RunStatus.PARTIAL
    assert not ledger.carried(job)  # neither policy carries
    if policy == "hold":
        assert ledger.watermark(job) == before
    else:
        assert ledger.watermark(job) == T0 + timedelta(minutes=1)
