"""Guarantee 5 for partial runs, against a simulated publisher.

A provider publishes records continuously, some while a run is fetching. One
hundred runs each fetch their window page by page, and a fifth of the pages
fail at random (seeded). With ``carry`` the failed pages' slices are handed to
the next runs, so every record is fetched at least once while the watermark
moves on every success/partial run; with ``hold`` the window stays until a run
ends clean, so every record is fetched too; with ``advance`` the failed pages'
records are lost, and the test lists them: that difference is the point.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from runtrack import Ledger, ManualClock, Run, RunStatus
from runtrack.models import GOOD

T0 = datetime(2030, 1, 1, tzinfo=UTC)
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)
PAGE = 10
RUNS = 100
FAILING = 0.2
TICK = timedelta(microseconds=1)


@dataclass
class Publisher:
    """Records stamped with the time they were published, strictly increasing."""

    rng: random.Random
    times: list[datetime] = field(default_factory=list)
    next_at: datetime = T0

    def publish_until(self, now: datetime) -> None:
        while self.next_at < now:
            self.times.append(self.next_at)
            gap = timedelta(seconds=self.rng.expovariate(1 / 20))
            self.next_at += max(gap, TICK)

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """What the provider's search returns for ``[start, end)``, oldest first."""
        return [t for t in self.times if start <= t < end]


@dataclass
class Fetcher:
    """A job's code: fetch a range page by page; a failed page is reported as
    the slice between the pages around it (its records are never seen)."""

    publisher: Publisher
    clock: ManualClock
    rng: random.Random
    failing: float
    fetched: set[datetime] = field(default_factory=set)
    failed_pages: list[tuple[datetime, datetime]] = field(default_factory=list)

    def fetch(self, run: Run, start: datetime, end: datetime) -> None:
        found = self.publisher.between(start, end)
        pages = [found[i : i + PAGE] for i in range(0, len(found), PAGE)] or [[]]
        for n, page in enumerate(pages):
            # The provider keeps publishing while the run fetches.
            self.clock.advance(timedelta(seconds=1))
            self.publisher.publish_until(self.clock.now())
            if self.rng.random() < self.failing:
                low = start if n == 0 else pages[n - 1][-1] + TICK
                high = pages[n + 1][0] if n + 1 < len(pages) else end
                if low < high:
                    run.failed_slice(low, high, f"HTTP 502 on page {n + 1}")
                    self.failed_pages.append((low, high))
                continue
            self.fetched.update(page)
            run.count("records", len(page))


@pytest.fixture
def manual(db_url: str) -> Iterator[tuple[Ledger, ManualClock]]:
    clock = ManualClock(T0)
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as opened:
        yield opened, clock


def ingest(ledger: Ledger, fetcher: Fetcher, job: str, policy: str) -> list[RunStatus]:
    """One run of the job: its window, then what it was handed."""
    before = ledger.watermark(job)
    with ledger.run(job, on_partial=policy) as run:
        fetcher.fetch(run, run.window.start or BEGINNING, run.window.end)  # type: ignore[arg-type]
        for piece in run.carried.slices:
            fetcher.fetch(run, piece.start, piece.end)
    status = ledger.get_run(run.id).status
    after = ledger.watermark(job)
    if status is RunStatus.SUCCESS or (status is RunStatus.PARTIAL and policy != "hold"):
        assert after == run.window.end, "the watermark moves on every good run"
    else:
        assert after == before, "hold keeps it where it was"
    return [status]


def simulate(
    ledger: Ledger, clock: ManualClock, policy: str
) -> tuple[Publisher, Fetcher, list[RunStatus]]:
    rng = random.Random(23)
    publisher = Publisher(random.Random(5))
    fetcher = Fetcher(publisher, clock, rng, FAILING)
    job = f"publisher:{policy}"
    statuses: list[RunStatus] = []
    for _ in range(RUNS):
        clock.advance(timedelta(seconds=rng.uniform(60, 600)))
        publisher.publish_until(clock.now())
        statuses += ingest(ledger, fetcher, job, policy)
    assert set(statuses) <= GOOD and RunStatus.PARTIAL in statuses
    if policy != "advance":  # a last run that fails nothing
        clock.advance(timedelta(minutes=5))
        publisher.publish_until(clock.now())
        fetcher.failing = 0.0
        statuses += ingest(ledger, fetcher, job, policy)
        assert statuses[-1] is RunStatus.SUCCESS
    return publisher, fetcher, statuses


def published_before(publisher: Publisher, ledger: Ledger, job: str) -> set[datetime]:
    watermark = ledger.watermark(job)
    assert watermark is not None
    return {t for t in publisher.times if t < watermark}


def test_carry_fetches_every_record_and_owes_nothing_after_a_clean_run(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    publisher, fetcher, statuses = simulate(ledger, clock, "carry")
    expected = published_before(publisher, ledger, "publisher:carry")
    assert len(expected) > 1000 and len(fetcher.failed_pages) > 20
    assert statuses.count(RunStatus.PARTIAL) > 20  # and the watermark moved on each
    assert expected - fetcher.fetched == set()
    assert not ledger.carried("publisher:carry")  # nothing owed, nothing given up


def test_hold_fetches_every_record_too(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, clock = manual
    publisher, fetcher, statuses = simulate(ledger, clock, "hold")
    expected = published_before(publisher, ledger, "publisher:hold")
    assert statuses.count(RunStatus.PARTIAL) > 20  # and the watermark stayed on each
    assert expected - fetcher.fetched == set()
    assert not ledger.carried("publisher:hold")


def test_advance_loses_the_records_of_failed_pages(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, clock = manual
    publisher, fetcher, _ = simulate(ledger, clock, "advance")
    lost = published_before(publisher, ledger, "publisher:advance") - fetcher.fetched
    print(f"advance lost {len(lost)} of {len(fetcher.fetched) + len(lost)} records")
    assert len(lost) > 100  # what "move on and forget" costs with a fifth of pages failing
    # Every lost record was on a failed page, and no later run looked there.
    assert all(any(low <= t < high for low, high in fetcher.failed_pages) for t in lost)
    assert not ledger.carried("publisher:advance")
