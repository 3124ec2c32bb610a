"""Races: the owner's finish, a finish by id, a cancel and a reap hit the same
run at the same instant, from threads and from other processes. Exactly one
of them makes the terminal transition (each transition adds one to the job's
tallies, so the tallies count them independently of what the racers say),
the others learn they lost, and the outcome is never overwritten afterwards.
Two runners racing for one job never have two active runs."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from reliability_support import Figures, Sizes, Worker, all_runs
from reliability_workers import HEARTBEAT, race_act, sleep_until

from runtrack import (
    InvalidTransition,
    LeaseLost,
    Ledger,
    ManualClock,
    RunNotCancellable,
    RunStatus,
)
from runtrack.run import Run

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("timed")]

#: The reapers' threshold: any run not touched in the last millisecond is stale.
STALE = 0.001


@dataclass
class Race:
    """One run raced over, and what each racer said."""

    run_id: int
    pending: bool
    claims: list[tuple[str, bool, str]]  # (racer, won, what it saw)

    @property
    def winners(self) -> list[str]:
        return [racer for racer, won, _ in self.claims if won]


@pytest.fixture
def owner(db_url: str) -> Iterator[Ledger]:
    """The ledger that starts and owns the runs (its heartbeat runs too)."""
    with Ledger(db_url, heartbeat_interval=HEARTBEAT) as opened:
        yield opened


@pytest.fixture
def other(db_url: str) -> Iterator[Ledger]:
    """Another ledger on the same database: another worker, API or reaper."""
    with Ledger(db_url, heartbeat_interval=HEARTBEAT) as opened:
        yield opened


def owner_finish(ledger: Ledger, run: Run) -> tuple[str, bool, str]:
    try:
        return "owner", True, ledger.finish_run(run, RunStatus.SUCCESS).status
    except LeaseLost as lost:
        return "owner", False, f"LeaseLost({lost.status})"


def owner_start(ledger: Ledger, run_id: int) -> tuple[str, Run | None]:
    """The pending variant's owner move: start the pending run."""
    try:
        return "started", ledger.start_run(run_id=run_id)
    except Exception as exc:  # InvalidTransition: someone ended it first
        return type(exc).__name__, None


def cancel_claim(ledger: Ledger, run_id: int, pending: bool) -> tuple[str, bool, str]:
    """A cancel makes the terminal transition only on a pending run."""
    try:
        record = ledger.cancel(run_id, by="racer")
    except RunNotCancellable as late:
        return "cancel", False, late.current
    won = pending and (record.status, record.error_type) == (RunStatus.CANCELLED, "cancelled")
    return "cancel", won, record.status


def in_threads(moves: list[Callable[[], Any]]) -> list[Any]:
    """Run the moves at once, one thread each, released by a barrier."""
    barrier = threading.Barrier(len(moves))
    results: list[Any] = [None] * len(moves)

    def go(i: int) -> None:
        barrier.wait()
        results[i] = moves[i]()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(moves))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def thread_race(owner: Ledger, other: Ledger, i: int) -> Race:
    if i % 2 == 0:  # a running run: its owner finishes it while others end it
        run = owner.start_run("race:threads")
        time.sleep(STALE)
        claims = in_threads(
            [
                lambda: owner_finish(owner, run),
                lambda: ("finish", *race_act(other, "finish", run.id, STALE)),
                lambda: ("reap", *race_act(other, "reap", run.id, STALE)),
                lambda: cancel_claim(owner, run.id, pending=False),
            ]
        )
        return Race(run.id, False, claims)
    record = owner.create_run("race:threads")  # pending: a start races the ends
    time.sleep(STALE)
    started, *claims = in_threads(
        [
            lambda: owner_start(owner, record.id),
            lambda: ("finish", *race_act(other, "finish", record.id, STALE)),
            lambda: ("reap", *race_act(other, "reap", record.id, STALE)),
            lambda: cancel_claim(other, record.id, pending=True),
        ]
    )
    return Race(record.id, True, [*claims, *end_started(owner, started)])


def end_started(owner: Ledger, started: tuple[str, Run | None]) -> list[tuple[str, bool, str]]:
    """If the owner's start won, its finish is the run's one terminal move."""
    _, run = started
    return [owner_finish(owner, run)] if run is not None else []


def check(races: list[Race], url: str, ledger: Ledger, job: str) -> dict[str, int]:
    """Exactly one winner per race, whose outcome is the stored one, counted
    once in the tallies; then nothing changes any more."""
    rows = {row.id: row for row in all_runs(url)}
    double = [r.run_id for r in races if len(r.winners) != 1]
    mismatched = [r.run_id for r in races if len(r.winners) == 1 and not _agrees(r, rows[r.run_id])]
    active = [r.run_id for r in races if rows[r.run_id].status in ("pending", "running")]
    tallied = sum(t.runs for t in ledger.job_tallies() if t.job == job)
    time.sleep(0.1)  # the losers' and heartbeats' last writes have landed by now
    later = {row.id: row for row in all_runs(url)}
    rewritten = [i for i in rows if later[i][1:] != rows[i][1:]]
    assert not double, f"races with not exactly one terminal transition: {double[:10]}"
    assert not mismatched, f"stored outcome is not the winner's: {mismatched[:10]}"
    assert not active, f"raced runs left active: {active[:10]}"
    assert tallied == len(races), f"{tallied} terminal transitions for {len(races)} runs"
    assert not rewritten, f"terminal runs changed afterwards: {rewritten[:10]}"
    wins = Counter(r.winners[0] for r in races)
    return {"races": len(races), "double": len(double), "stuck": len(active), **wins}


_EXPECTED = {
    "owner": ("success", None),
    "finish": ("failed", "error"),
    "cancel": ("cancelled", "cancelled"),
}


def _agrees(race: Race, row: Any) -> bool:
    status, error_type = row.status, row.error_type
    winner = race.winners[0]
    if winner == "reap":
        return error_type == "heartbeat_timeout" and status in ("failed", "cancelled")
    return (status, error_type) == _EXPECTED[winner]


def test_finish_cancel_and_reap_race_from_threads(
    db_url: str, backend: str, owner: Ledger, other: Ledger, sizes: Sizes, figures: Figures
) -> None:
    races = [thread_race(owner, other, i) for i in range(sizes.thread_races)]
    figures.add("races_threads", backend, **check(races, db_url, owner, "race:threads"))


def test_two_finishes_at_the_same_clock_reading_have_one_winner(
    db_url: str, backend: str, sizes: Sizes, figures: Figures
) -> None:
    """The owner's finish and a finish by id, same status, same timestamp
    (a coarse or frozen clock): the loser must not mistake the winner's
    write for its own."""
    clock = ManualClock()
    with (
        Ledger(db_url, clock=clock, heartbeat_interval=HEARTBEAT) as first,
        Ledger(db_url, clock=clock, heartbeat_interval=HEARTBEAT) as second,
    ):
        races = []
        for _ in range(sizes.thread_races // 5):
            run = first.start_run("race:same-time")
            clock.advance(1)
            claims = in_threads(
                [
                    lambda run=run: owner_finish(first, run),
                    lambda run=run: by_id_success(second, run.id),
                ]
            )
            races.append(Race(run.id, False, claims))
        double = [r.run_id for r in races if len(r.winners) != 1]
        figures.add("races_same_time", backend, races=len(races), double=len(double))
        assert not double, f"two finishes both claimed the run: {double[:10]}"


def by_id_success(ledger: Ledger, run_id: int) -> tuple[str, bool, str]:
    try:
        return "finish", True, ledger.finish_run(run_id, RunStatus.SUCCESS).status
    except InvalidTransition as lost:
        return "finish", False, lost.current


def test_finish_cancel_and_reap_race_across_processes(
    db_url: str,
    backend: str,
    owner: Ledger,
    sizes: Sizes,
    figures: Figures,
    spawn: Callable[..., Worker],
) -> None:
    racers = [spawn("race", db_url, role) for role in ("finish", "reap", "cancel")]
    for racer in racers:
        racer.expect("ready")
    races = [process_race(owner, racers, i) for i in range(sizes.process_races)]
    figures.add("races_processes", backend, **check(races, db_url, owner, "race:processes"))


def process_race(owner: Ledger, racers: list[Worker], i: int) -> Race:
    pending = i % 2 == 1
    if pending:
        run_id, run = owner.create_run("race:processes").id, None
    else:
        run = owner.start_run("race:processes")
        run_id = run.id
    deadline = time.monotonic() + 0.03  # time for the message to reach every racer
    for racer in racers:
        racer.send(run_id, deadline, STALE)
    sleep_until(deadline)
    if pending:
        claims = end_started(owner, owner_start(owner, run_id))
    else:
        assert run is not None
        claims = [owner_finish(owner, run)]
    for racer in racers:
        role, won, seen = racer.expect("result").split(" ", 2)
        claims.append((role, won == "1" and (role != "cancel" or pending), seen))
    return Race(run_id, pending, claims)


def test_two_runners_racing_for_one_job_never_run_it_twice_at_once(
    db_url: str,
    backend: str,
    owner: Ledger,
    sizes: Sizes,
    figures: Figures,
    spawn: Callable[..., Worker],
) -> None:
    job = "race:runners"
    runners = [spawn("runner", db_url, job, sizes.runner_race_seconds, f"r{n}") for n in range(2)]
    for runner in runners:
        runner.expect("ready")
    start = time.monotonic() + 0.05
    for runner in runners:
        runner.send(start)
    seen = Counter[str]()
    for runner in runners:
        seen.update(json.loads(runner.expect("done", timeout=60 + sizes.runner_race_seconds)))
    runs = owner.list_runs(job=job, limit=1000).items
    figures.add(
        "races_runners",
        backend,
        runs=len(runs),
        busy_skips=seen["skipped_busy"],
        double=seen["double"],
    )
    assert seen["double"] == 0, "a run saw another active run of its job"
    assert seen["alone"] == 2 * len(runs) >= 4
    assert all(r.status is RunStatus.SUCCESS for r in runs)
