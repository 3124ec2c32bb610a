"""Measures 1-3: what tracking costs per run, per item and per counter
increment, each next to its raw floor in the same process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.floors import PostgresFloor, SqliteFloor
from bench.results import Measure, Target
from bench.timing import Batch, alternate, summarize, timed
from runtrack import Ledger

__all__ = ["OverheadParams", "counters", "items", "run_overhead"]

JOB = "bench:overhead"
Floor = SqliteFloor | PostgresFloor


@dataclass(frozen=True, slots=True)
class OverheadParams:
    reps: int  # alternations of runtrack and floor batches
    batch: int  # runs per batch
    items: int  # items per run
    item_reps: int
    increments: int  # counter increments per batch
    counter_reps: int


def _one_run(ledger: Ledger) -> Callable[[], None]:
    def run_once() -> None:
        with ledger.run(JOB) as run:
            run.count("fetched", 25)
            run.count("upserted", 25)
            run.count("skipped")

    return run_once


def run_overhead(
    backend: str, ledger: Ledger, floor: Floor, p: OverheadParams, limit_ms: float, times: float
) -> Measure:
    """``with ledger.run(job)`` + 3 increments against one INSERT and one
    UPDATE by the bare driver, in ms per run."""
    ours = _one_run(ledger)
    timed(ours, 50)  # warm: compiled statements, pooled connection, heartbeat thread
    timed(floor.run, 50)
    found = alternate(
        [("runtrack", lambda: timed(ours, p.batch)), ("floor", lambda: timed(floor.run, p.batch))],
        p.reps,
    )
    mine = summarize([t * 1000 for t in found["runtrack"].times])
    base = summarize([t * 1000 for t in found["floor"].times])
    ratio = mine.median / base.median
    label = "stdlib sqlite3" if backend == "sqlite" else "psycopg"
    cpu = (_cpu_ms(found["runtrack"]), _cpu_ms(found["floor"]))
    return Measure(
        key=f"run_overhead.{backend}",
        title=f"run overhead, {'SQLite' if backend == 'sqlite' else 'PostgreSQL'}",
        unit="ms/run",
        stats=mine,
        floor=base,
        floor_label=label,
        ratio=ratio,
        cpu=cpu,
        notes=f"client CPU {cpu[0]:.3f} vs {cpu[1]:.3f} ms/run",
        target=Target(
            f"<= {limit_ms:g} ms and <= {times:g}x floor",
            (
                (f"median <= {limit_ms:g} ms", mine.median <= limit_ms),
                (f"<= {times:g}x", ratio <= times),
            ),
        ),
        extra={"runs_per_side": len(found["runtrack"].times)},
    )


def _cpu_ms(batch: Batch) -> float:
    return batch.cpu / batch.ops * 1000


def items(backend: str, ledger: Ledger, floor: Floor, p: OverheadParams, minimum: float) -> Measure:
    """``run.item(key, "success")`` for every item of one run (timed from the
    start of the block to its end, so the last flush counts) against one
    executemany (SQLite) or COPY (PostgreSQL) of the same rows."""
    keys = [f"offer-{i:08d}" for i in range(p.items)]

    def ours() -> Batch:
        began = time.perf_counter()
        cpu = time.process_time()
        with ledger.run(JOB) as run:
            item = run.item
            for key in keys:
                item(key, "success")
        return Batch([time.perf_counter() - began], time.process_time() - cpu, len(keys))

    def raw() -> Batch:
        began = time.perf_counter()
        cpu = time.process_time()
        floor.items(keys)
        return Batch([time.perf_counter() - began], time.process_time() - cpu, len(keys))

    found = alternate([("runtrack", ours), ("floor", raw)], p.item_reps)
    mine = summarize([p.items / t for t in found["runtrack"].times])
    base = summarize([p.items / t for t in found["floor"].times])
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    cpu = (_cpu_ms(found["runtrack"]) * 1000, _cpu_ms(found["floor"]) * 1000)  # us per item
    return Measure(
        key=f"items.{backend}",
        title=f"items, {name}",
        unit="items/s",
        stats=mine,
        floor=base,
        floor_label="executemany" if backend == "sqlite" else "COPY",
        ratio=base.median / mine.median,
        cpu=cpu,
        target=Target(f">= {minimum:,.0f}/s", ((f">= {minimum:,.0f}/s", mine.median >= minimum),)),
        notes=f"client CPU {cpu[0]:.1f} vs {cpu[1]:.1f} us/item",
        extra={"items_per_run": p.items},
    )


def counters(ledger: Ledger, p: OverheadParams, minimum: float) -> Measure:
    """``run.count(name)`` in one thread against the same loop over a plain
    dict (the floor: a Python function call and a dict update)."""
    plain: dict[str, int] = {}

    def bump(name: str, n: int = 1) -> None:
        plain[name] = plain.get(name, 0) + n

    def loop(count: Callable[[str], None]) -> Batch:
        names = range(p.increments)
        began = time.perf_counter()
        for _ in names:
            count("fetched")
        return Batch([time.perf_counter() - began], 0.0, p.increments)

    with ledger.run(JOB) as run:
        found = alternate(
            [("runtrack", lambda: loop(run.count)), ("floor", lambda: loop(bump))], p.counter_reps
        )
    mine = summarize([p.increments / t for t in found["runtrack"].times])
    base = summarize([p.increments / t for t in found["floor"].times])
    return Measure(
        key="counters",
        title="counter increments",
        unit="incr/s",
        stats=mine,
        floor=base,
        floor_label="dict update",
        ratio=base.median / mine.median,
        target=Target(f">= {minimum:,.0f}/s", ((f">= {minimum:,.0f}/s", mine.median >= minimum),)),
        extra={"increments_per_batch": p.increments},
    )
