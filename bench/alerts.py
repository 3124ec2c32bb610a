"""Issue 18: what checking expectations and the volume guard cost.

``check()`` with 10,000 jobs with expectations (target: <= 200 ms). The
database picks the jobs whose incidents may change (none, in the steady
state measured) and reads the open incidents and the given-up counts,
never the runs table, so the history's size does not enter; the section
times it on its own database with 10,000 jobs (an incident open on each
tenth, so that the steady state writes nothing). The guard: the time a run
takes on a job without volume expectations, with and without the guard
(target: <= 0.05 ms added), and on a guarded job (no query more: the
history is read by the run's start and written by its job update)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from bench.results import Measure, Target
from bench.timing import summarize
from runtrack import Ledger, ManualClock, Volume
from runtrack.store.schema import expectations, jobs

__all__ = ["check_cost", "guard_cost"]

JOBS = 10_000


def _seed(url: str, now: datetime) -> None:
    engine = sa.create_engine(url)
    naive = now.replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(expectations.delete())
        conn.execute(jobs.delete())
        conn.execute(
            jobs.insert(),
            [
                {"key": f"alerts:{n:05d}", "created_at": naive, "consecutive_failures": 0,
                 "last_success_at": naive - timedelta(hours=30 if n % 10 == 0 else 1)}
                for n in range(JOBS)
            ],
        )  # fmt: skip
        conn.execute(
            expectations.insert(),
            [
                {"job_key": f"alerts:{n:05d}", "success_within": 26 * 3600.0,
                 "max_failures": 3, "origin": "explicit", "updated_at": naive}
                for n in range(JOBS)
            ],
        )  # fmt: skip
    engine.dispose()


def check_cost(backend: str, url: str, reps: int, limit_ms: float = 200.0) -> Measure:
    now = datetime(2026, 6, 1, tzinfo=ManualClock().now().tzinfo)
    _seed(url, now)
    with Ledger(url, clock=ManualClock(now), migrate=False) as ledger:
        opened = len(ledger.check().opened)  # the first check opens 1,000 incidents
        samples = []
        for _ in range(reps):
            began = time.perf_counter()
            result = ledger.check()
            samples.append((time.perf_counter() - began) * 1000)
            assert not result.opened and len(result.open) == opened
    stats = summarize(samples)
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    return Measure(
        key=f"check.{backend}",
        title=f"check() with {JOBS:,} jobs with expectations, {name}",
        unit="ms",
        stats=stats,
        target=Target(
            f"<= {limit_ms:g} ms", ((f"median <= {limit_ms:g} ms", stats.median <= limit_ms),)
        ),
        extra={"jobs": JOBS, "open_incidents": opened},
    )


def _per_run(ledger: Ledger, job: str, reps: int) -> list[float]:
    samples = []
    for n in range(reps):
        began = time.perf_counter()
        with ledger.run(job) as run:
            run.count("offers", 1000 + n % 7)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def guard_cost(url: str, reps: int, limit_ms: float = 0.05) -> list[Measure]:
    """Per-run milliseconds: an unguarded job (the guard's cache lookups
    only), and a job with a volume expectation (its history in the start's
    read and the job update it makes anyway)."""
    with Ledger(url) as ledger:
        ledger.expect("bench:guarded", volume={"offers": Volume(min_ratio=0.2)})
        _per_run(ledger, "bench:plain", 20)  # warm-up
        _per_run(ledger, "bench:guarded", 20)
        plain = summarize(_per_run(ledger, "bench:plain", reps))
        guarded = summarize(_per_run(ledger, "bench:guarded", reps))
        began = time.perf_counter()
        for _ in range(reps * 100):
            ledger.alerting.volume.expectation("bench:plain")
        lookup = (time.perf_counter() - began) * 1000 / (reps * 100)
    return [
        Measure(
            key="guard.unguarded",
            title="volume guard on a job without volume expectations (per run)",
            unit="ms",
            stats=plain,
            target=Target(
                f"guard adds <= {limit_ms:g} ms",
                ((f"lookup {lookup * 1000:.1f} us <= {limit_ms:g} ms", lookup <= limit_ms),),
            ),
            extra={"guard_lookup_ms": lookup},
        ),
        Measure(
            key="guard.guarded",
            title="a run of a job with a volume expectation (guard: no query more)",
            unit="ms",
            stats=guarded,
            notes=f"vs {plain.median:.2f} ms unguarded",
        ),
    ]
