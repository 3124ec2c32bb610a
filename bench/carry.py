"""Handing a job's carried entries to a run: ``run.carried`` with 10,000 owed
items (issue 23: at most 50 ms). The run that asks is then cancelled, which
resolves nothing and counts no attempt, so every repetition is handed the same
10,000 entries."""

from __future__ import annotations

import time

from bench.results import Measure, Target
from bench.timing import summarize
from runtrack import Ledger, RunStatus

__all__ = ["CARRIED", "hand_out"]

JOB = "bench:carried"
CARRIED = 10_000


def _owe(ledger: Ledger, count: int) -> None:
    if ledger.get_job(JOB) is not None and len(ledger.carried(JOB).items) >= count:
        return
    with ledger.run(JOB, max_carry_attempts=1000) as run:
        for n in range(count):
            run.item(f"offer-{n:08d}", "error", source="board", error="HTTP 500")


def hand_out(backend: str, ledger: Ledger, reps: int, limit_ms: float) -> Measure:
    """Milliseconds from a run's first ``run.carried`` to the records in hand."""
    _owe(ledger, CARRIED)
    samples: list[float] = []
    for _ in range(reps + 1):  # the first one warms the compiled statements
        run = ledger.start_run(JOB, max_carry_attempts=1000)
        began = time.perf_counter()
        handed = run.carried
        samples.append(time.perf_counter() - began)
        assert len(handed.items) == CARRIED
        ledger.finish_run(run, RunStatus.CANCELLED, error="bench: hand-out only")
    stats = summarize([t * 1000 for t in samples[1:]])
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    return Measure(
        key=f"carried_handout.{backend}",
        title=f"hand out {CARRIED:,} carried items, {name}",
        unit="ms",
        stats=stats,
        target=Target(
            f"<= {limit_ms:g} ms", ((f"median <= {limit_ms:g} ms", stats.median <= limit_ms),)
        ),
        extra={"carried_items": CARRIED},
    )
