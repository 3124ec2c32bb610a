"""Issue 17: the queue. Three measures:

- trigger -> running: a worker process (``runtrack worker``, concurrency 1)
  serves a no-op job; the client triggers a run, then polls it until a worker
  has taken it, at random moments of the worker's poll cycle. Targets: p95
  <= 1 s on PostgreSQL (LISTEN/NOTIFY), <= ``poll_interval`` + 0.25 s on SQLite.
- drain: runs of no-op jobs queued first (different params, so none is a
  double trigger), then 4 worker processes x concurrency 4 on PostgreSQL.
  The rate is the runs over the span from the first claim to the last finish
  (the databases' own times); the wall time from the workers' spawn (their
  interpreter start and imports included) is shown beside. Target >= 300 runs/s.
- claim: ``ledger.claim`` on the generated ledger (1,000,000 runs in the full
  suite) with 10,000 runs queued over 50 jobs; each claimed run is finished
  outside the timing. Target p95 <= 2 ms (PostgreSQL).
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from bench.generate import Shape
from bench.results import Measure, Target
from bench.timing import summarize
from runtrack import Ledger, ManualClock, RunStatus
from runtrack.store.claiming import candidates
from runtrack.store.schema import runs

__all__ = ["job_keys", "measure_claim", "measure_drain", "measure_latency"]


def job_keys(count: int) -> list[str]:
    """The jobs the worker processes serve (``bench/queue_worker.py``). Its
    module opens a ledger when imported, as a runner target does: the section
    names its keys here instead of importing it."""
    return [f"bench:queue:{n:02d}" for n in range(count)]


ROOT = Path(__file__).resolve().parent.parent


def _names(backend: str) -> str:
    return "SQLite" if backend == "sqlite" else "PostgreSQL"


def start_workers(
    url: str, count: int, concurrency: int, jobs: int, poll: float, logs: Path
) -> list[subprocess.Popen[bytes]]:
    """``count`` ``runtrack worker`` processes serving ``jobs`` no-op jobs."""
    env = {
        **os.environ,
        "RUNTRACK_DATABASE_URL": url,
        "BENCH_QUEUE_JOBS": str(jobs),
        "BENCH_QUEUE_SLOTS": str(max(concurrency, 1)),
        "BENCH_QUEUE_POLL": str(poll),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "runtrack", "worker", "bench.queue_worker:runner"]
    workers: list[subprocess.Popen[bytes]] = []
    for n in range(count):
        with (logs / f"queue-worker-{n}.out").open("wb") as out:
            workers.append(
                subprocess.Popen(
                    [*command, "--concurrency", str(concurrency)],
                    env=env,
                    stdout=out,
                    stderr=out,
                    cwd=ROOT,
                )
            )
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)


def _wait(ledger: Ledger, run_id: int, seconds: float, logs: Path) -> float:
    """Poll run ``run_id`` until a worker has taken it; the perf_counter then."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ledger.get_run(run_id).status is not RunStatus.PENDING:
            return time.perf_counter()
        time.sleep(0.002)
    outputs = "\n".join(p.read_text()[-2000:] for p in logs.glob("queue-worker-*.out"))
    raise RuntimeError(f"run {run_id} not taken within {seconds:g} s:\n{outputs}")


def measure_latency(backend: str, url: str, reps: int, poll: float, logs: Path) -> Measure:
    """Seconds from ``trigger()`` returning to the run seen taken by a worker."""
    limit = 1.0 if backend == "postgresql" else poll + 0.25
    job = job_keys(1)[0]
    samples: list[float] = []
    server_side: list[float] = []
    with Ledger(url) as ledger:
        ledger.ensure_job(job, provider="bench")
        workers = start_workers(url, 1, 1, 1, poll, logs)
        try:
            warm = ledger.trigger(job, params={"warm-up": True}, by="bench")
            _wait(ledger, warm.id, 60, logs)  # the worker is up
            for n in range(reps):
                time.sleep(random.uniform(0.05, poll))  # anywhere in the poll cycle
                run = ledger.trigger(job, params={"n": n}, by="bench")
                began = time.perf_counter()
                samples.append(_wait(ledger, run.id, 30, logs) - began)
                record = ledger.get_run(run.id)
                if record.started_at is not None:
                    server_side.append((record.started_at - record.created_at).total_seconds())
        finally:
            stop_workers(workers)
    stats = summarize(samples)
    how = "LISTEN/NOTIFY" if backend == "postgresql" else f"poll_interval {poll:g} s"
    return Measure(
        key=f"queue_latency.{backend}",
        title=f"trigger -> running, {_names(backend)} ({how})",
        unit="s",
        stats=stats,
        target=Target(f"p95 <= {limit:g} s", ((f"p95 <= {limit:g} s", stats.p95 <= limit),)),
        notes=f"started_at - created_at p95 {summarize(server_side).p95:.3f} s",
        extra={"poll_interval": poll, "server_side": summarize(server_side).as_dict()},
    )


def measure_drain(url: str, total: int, logs: Path, limit: float = 300.0) -> Measure:
    """Runs per second drained by 4 worker processes x concurrency 4."""
    processes, concurrency, jobs = 4, 4, 8
    keys = job_keys(jobs)
    with Ledger(url) as ledger:
        for key in keys:
            ledger.ensure_job(key, provider="bench")
        queued = [
            ledger.trigger(keys[n % jobs], params={"n": n}, by="bench").id for n in range(total)
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        spawned = time.perf_counter()
        workers = start_workers(url, processes, concurrency, jobs, 1.0, logs)
        try:
            deadline = time.monotonic() + 300
            while ledger.count_runs(status=["pending", "running"]) > 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the queue was not drained within 300 s ({logs})")
                time.sleep(0.02)
            wall = time.perf_counter() - spawned
        finally:
            stop_workers(workers)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        query = sa.select(
            sa.func.min(runs.c.started_at),
            sa.func.max(runs.c.finished_at),
            sa.func.count(),
            sa.func.count(sa.distinct(runs.c.worker_id)),
        ).where(runs.c.id.in_(queued), runs.c.status == RunStatus.SUCCESS.value)
        each = sa.select(runs.c.started_at, runs.c.finished_at).where(
            runs.c.id.in_(queued), runs.c.status == RunStatus.SUCCESS.value
        )
        with ledger.engine.connect() as conn:
            first, last, done, by = conn.execute(query).one()
            held = [(f - s).total_seconds() * 1000 for s, f in conn.execute(each)]
    span = (last - first).total_seconds()
    rate = done / span
    return Measure(
        key="queue_drain.postgresql",
        title=f"drain {total:,} no-op runs, {processes} workers x {concurrency}, PostgreSQL",
        unit="runs/s",
        stats=summarize([rate]),
        target=Target(
            f">= {limit:g} runs/s",
            ((f">= {limit:g} runs/s", rate >= limit), (f"all {total} succeeded", done == total)),
        ),
        notes=f"{span:.2f} s first claim to last finish; {wall:.2f} s from spawn; {by} workers;"
        f" claim to finish {summarize(held).median:.1f} ms median per run;"
        f" workers' CPU {cpu * 1000 / total:.1f} ms per run (their startup included)",
        extra={
            "runs": total,
            "succeeded": done,
            "span_s": span,
            "wall_s": wall,
            "workers": by,
            "claim_to_finish_ms": summarize(held).as_dict(),
            "workers_cpu_s": cpu,
        },
    )


def _enqueue(url: str, shape: Shape, keys: list[str], count: int) -> None:
    """``count`` pending runs over ``keys``, written in bulk (as ``trigger``
    would write them, less the 10,000 transactions)."""
    at = datetime.fromisoformat(shape.anchor).replace(tzinfo=None)
    rows = [
        {"uid": str(uuid.uuid4()), "job_key": keys[n % len(keys)], "provider": "bench",
         "status": "pending", "attempt": 1, "priority": 0, "triggered_by": "bench",
         "params": {"n": n}, "created_at": at, "counters": {}, "progress_done": 0,
         "moves_watermark": True, "on_partial": "carry", "max_carry_attempts": 5,
         "items_success": 0, "items_not_found": 0, "items_skipped": 0, "items_error": 0}
        for n in range(count)
    ]  # fmt: skip
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(runs.insert(), rows)
    engine.dispose()


def _candidates(ledger: Ledger, keys: list[str], reps: int) -> tuple[float, str]:
    """The claim's candidate read (as ``store.queue.claim_next`` sends it)
    on the server: median execution time (ms) and its plan's access path."""
    read = candidates(keys, "postgresql").compile(
        dialect=ledger.engine.dialect, compile_kwargs={"literal_binds": True}
    )
    query = sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {read}")
    times: list[float] = []
    plan: dict[str, object] = {}
    with ledger.engine.connect() as conn:
        for _ in range(reps):
            with conn.begin() as tx:
                found = conn.execute(query).scalar_one()[0]
                tx.rollback()
            times.append(float(found["Execution Time"]))
            plan = found["Plan"]
    nodes = []
    while isinstance(plan, dict):
        nodes.append(str(plan.get("Index Name") or plan["Node Type"]))
        children = plan.get("Plans")
        plan = children[0] if isinstance(children, list) and children else None  # type: ignore[assignment]
    return summarize(times).median, " > ".join(nodes)


def measure_claim(url: str, shape: Shape, reps: int, limit_ms: float = 2.0) -> Measure:
    """Milliseconds per ``ledger.claim`` with 10,000 runs queued."""
    queued, keys = 10_000, [f"bench:claim:{n:02d}" for n in range(50)]
    clock = ManualClock(datetime.fromisoformat(shape.anchor))
    with Ledger(url, clock=clock, migrate=False, heartbeat_interval=60.0) as ledger:
        for key in keys:
            ledger.ensure_job(key, provider="bench")
        _enqueue(url, shape, keys, queued)
        with ledger.engine.begin() as conn:  # committed: a rolled-back ANALYZE keeps no statistics
            conn.exec_driver_sql("ANALYZE runs")
        served = dict.fromkeys(keys, 4)
        samples: list[float] = []
        for _ in range(reps + 5):  # the first five warm the statements
            began = time.perf_counter()
            run = ledger.claim(served)
            samples.append((time.perf_counter() - began) * 1000)
            assert run is not None, "the queue ran dry"
            ledger.finish_run(run, RunStatus.SUCCESS)
        server, plan = _candidates(ledger, keys, reps)
        left = ledger.count_runs(status=["pending"])
        total = ledger.count_runs()
    stats = summarize(samples[5:])
    return Measure(
        key="queue_claim.postgresql",
        title=f"claim with {queued:,} queued among {total:,} runs, PostgreSQL",
        unit="ms",
        stats=stats,
        target=Target(
            f"p95 <= {limit_ms:g} ms", ((f"p95 <= {limit_ms:g} ms", stats.p95 <= limit_ms),)
        ),
        notes=f"its candidate query alone: {server:.3f} ms on the server ({plan})",
        extra={
            "queued": queued,
            "runs": total,
            "pending_after": left,
            "candidates_server_ms": server,
            "candidates_plan": plan,
        },
    )
