"""Measure 5: reaping stale runs, and pruning history while another process
keeps starting runs (how long does it ever wait for the database?)."""

from __future__ import annotations

import multiprocessing
import time
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import sqlalchemy as sa

from bench.generate import Shape
from bench.results import Measure, Target
from bench.timing import summarize
from runtrack import Ledger
from runtrack.store.schema import runs

__all__ = ["measure_prune", "measure_reap", "seed_stale"]

REAP_MS = 200.0
WAIT_MS = 100.0
STARTER_JOB = "bench:starter"


def seed_stale(url: str, shape: Shape, count: int) -> None:
    """``count`` running runs whose worker died two hours before the
    ledger's "now": each holds a free lease slot (1..) of a generated job."""
    now = datetime.fromisoformat(shape.anchor).replace(tzinfo=None)
    dead = now - timedelta(hours=2)
    rows = []
    for i in range(count):
        job = shape.job_keys[i % len(shape.job_keys)]
        slot = 1 + i // len(shape.job_keys)
        rows.append(
            {
                "uid": f"00000000-0000-4000-9000-{i:012x}",
                "job_key": job,
                "status": "running",
                "lease_key": f"{job}#{slot}",
                "attempt": 1,
                "triggered_by": "schedule",
                "created_at": dead,
                "started_at": dead,
                "heartbeat_at": dead,
                "counters": {"fetched": i},
                "progress_done": 0,
                "window_end": dead,
                "moves_watermark": True,
                "items_success": 0,
                "items_not_found": 0,
                "items_skipped": 0,
                "items_error": 0,
            }
        )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(runs), rows)
    engine.dispose()


def measure_reap(backend: str, ledger: Ledger, stale: int) -> Measure:
    """One ``ledger.reap()`` finalizing the seeded stale runs."""
    began = time.perf_counter()
    reaped = ledger.reap()
    took = (time.perf_counter() - began) * 1000
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    return Measure(
        key=f"reap.{backend}",
        title=f"reap {stale:,} stale runs, {name}",
        unit="ms",
        stats=summarize([took]),
        target=Target(f"<= {REAP_MS:g} ms", ((f"<= {REAP_MS:g} ms", took <= REAP_MS),)),
        notes=f"{len(reaped)} runs reaped (seeded plus the generator's stale ones)",
        extra={"reaped": len(reaped)},
    )


def _starter(url: str, stop: Any, out: Connection) -> None:
    """Another process: starts and finishes runs back to back, timing each
    database call (entering and leaving the block), until told to stop."""
    waits: list[float] = []
    with Ledger(url, migrate=False) as ledger:
        out.send("ready")
        while not stop.is_set():
            began = time.perf_counter()
            context = ledger.run(STARTER_JOB)
            run = context.__enter__()
            entered = time.perf_counter()
            run.count("fetched")
            context.__exit__(None, None, None)
            waits += [entered - began, time.perf_counter() - entered]
            time.sleep(0.002)
    out.send(waits)


def measure_prune(backend: str, ledger: Ledger, url: str, shape: Shape, p: Any) -> list[Measure]:
    """Prune the older half (about ``p.prune`` runs) in batches while a
    starter process runs; the prune's duration and the starter's waits."""
    span = timedelta(days=90)
    share = min(1.0, p.prune / shape.runs)
    older_than = span * (1 - share)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    receive, send = context.Pipe(duplex=False)
    starter = context.Process(target=_starter, args=(url, stop, send), daemon=True)
    starter.start()
    assert receive.recv() == "ready"
    time.sleep(0.2)  # the starter's first runs, before the prune
    began = time.perf_counter()
    result = ledger.prune(older_than, batch_size=p.prune_batch)
    took = time.perf_counter() - began
    time.sleep(0.2)
    stop.set()
    waits: list[float] = receive.recv()
    starter.join(timeout=30)
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    wait_ms = [w * 1000 for w in waits]
    longest = max(wait_ms)
    over = sum(w > WAIT_MS for w in wait_ms)
    return [
        Measure(
            key=f"prune.{backend}",
            title=f"prune {result.runs:,} runs, {name}",
            unit="s",
            stats=summarize([took]),
            notes=f"{result.batches} batches of {p.prune_batch}; {result.items:,} items",
            extra={"runs": result.runs, "items": result.items, "batches": result.batches},
        ),
        Measure(
            key=f"prune.{backend}.starter_wait",
            title=f"  concurrent starter's waits, {name}",
            unit="ms",
            stats=summarize(wait_ms),
            target=Target(
                f"max <= {WAIT_MS:g} ms", ((f"longest wait <= {WAIT_MS:g} ms", longest <= WAIT_MS),)
            ),
            notes=f"{len(waits) // 2} runs started and finished during the prune; "
            f"{over} of {len(waits)} calls waited > {WAIT_MS:g} ms",
            extra={"calls": len(waits), "over_limit": over},
        ),
    ]
