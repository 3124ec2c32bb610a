"""What the integrations add: per Celery task (the task run by Celery's own
tracer, signals and all, tracked against untracked) and per Scrapy crawl
(a one-page crawl with the extension against without), both on SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.databases import Databases
from bench.params import Params
from bench.results import Measure, Target
from bench.timing import Batch, alternate, summarize, timed
from runtrack import Ledger

__all__ = ["celery_task", "scrapy_crawl"]

LIMIT_MS = 2.0


def celery_task(dbs: Databases, p: Params) -> Measure:
    """``task.apply()`` (Celery's tracer with its prerun/postrun signals, in
    this process) with runtrack's tracking connected, against disconnected."""
    from celery import Celery

    from runtrack.integrations.celery import track

    app = Celery("bench", broker="memory://", set_as_current=False)

    @app.task(name="bench.ingest")
    def ingest(n: int) -> int:
        return n + 1

    ledger = Ledger(dbs.sqlite_url("celery"))
    tracker = track(app, ledger)
    try:

        def side(connected: bool) -> Batch:
            (tracker.connect if connected else tracker.disconnect)()
            try:
                return timed(lambda: ingest.apply((1,)), p.overhead.batch)
            finally:
                tracker.disconnect()

        tracker.disconnect()
        side(True), side(False)  # warm: the tracer, compiled statements, the heartbeat thread
        found = alternate(
            [("runtrack", lambda: side(True)), ("floor", lambda: side(False))], p.overhead.reps
        )
        runs = ledger.count_runs(job="bench.ingest")
    finally:
        ledger.close()
    return _added(
        "celery_task.sqlite",
        "Celery task, added",
        "ms/task",
        found,
        "untracked task",
        {"tasks_per_side": len(found["runtrack"].times), "runs_recorded": runs},
    )


def scrapy_crawl(dbs: Databases, p: Params) -> Measure:
    """A one-page crawl (``bench.scrapy_crawls``, in a subprocess: one reactor
    per process) with the extension enabled, against without."""
    count = max(20, p.overhead.reps * 4)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.scrapy_crawls", dbs.sqlite_url("scrapy"), str(count)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the crawls failed: {done.stderr[-2000:]}")
    found = {
        name: Batch(side["times"], side["cpu"], len(side["times"]))
        for name, side in json.loads(done.stdout.splitlines()[-1]).items()
    }
    return _added(
        "scrapy_crawl.sqlite",
        "Scrapy crawl, added",
        "ms/crawl",
        found,
        "crawl without it",
        {"crawls_per_side": len(found["runtrack"].times)},
    )


def _added(
    key: str, title: str, unit: str, found: dict[str, Batch], label: str, extra: dict[str, int]
) -> Measure:
    """runtrack's side and the plain side in ms per operation; the target is on
    the difference of their medians (the added wall time), CPU beside it."""
    mine = summarize([t * 1000 for t in found["runtrack"].times])
    base = summarize([t * 1000 for t in found["floor"].times])
    added = mine.median - base.median
    cpu = tuple(found[name].cpu / found[name].ops * 1000 for name in ("runtrack", "floor"))
    return Measure(
        key=key,
        title=title,
        unit=unit,
        stats=mine,
        floor=base,
        floor_label=label,
        ratio=mine.median / base.median,
        cpu=(cpu[0], cpu[1]),
        notes=f"added {added:.2f} ms wall, {cpu[0] - cpu[1]:.2f} ms client CPU",
        target=Target(
            f"<= {LIMIT_MS:g} ms added", ((f"added <= {LIMIT_MS:g} ms", added <= LIMIT_MS),)
        ),
        extra={**extra, "added_ms": round(added, 3), "added_cpu_ms": round(cpu[0] - cpu[1], 3)},
    )
