"""The suite's sections: each takes the run's context and returns its table
lines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.alerts import check_cost, guard_cost
from bench.carry import hand_out
from bench.databases import Databases
from bench.exec_cost import measure_exec
from bench.floors import PostgresFloor, SqliteFloor
from bench.generate import Shape, Spec, copy_sqlite, generate_postgres, generate_sqlite
from bench.integrations import celery_task, scrapy_crawl
from bench.maintenance import measure_prune, measure_reap, seed_stale
from bench.overhead import counters, items, run_overhead
from bench.params import Params
from bench.queries import measure_queries, reference
from bench.queueing import measure_claim, measure_drain, measure_latency
from bench.results import Measure
from bench.serving import Server, measure_endpoint
from runtrack import Ledger, ManualClock

__all__ = ["SECTIONS", "Suite"]


@dataclass
class Suite:
    """What the sections share: sizes, databases, the generated ledgers
    (built once, on first use) and the query plans for the results file."""

    p: Params
    dbs: Databases
    plans: dict[str, Any] = field(default_factory=dict)
    generated: dict[str, Any] = field(default_factory=dict)
    _sqlite: tuple[Path, Shape] | None = None
    _postgres: tuple[str, Shape] | None = None

    @property
    def spec(self) -> Spec:
        return Spec(self.p.runs, self.p.jobs, self.p.item_share, self.p.items_per_run)

    def sqlite_ledger(self) -> tuple[Path, Shape]:
        if self._sqlite is None:
            print(f"generating {self.p.runs:,} runs on SQLite (cached) ...", flush=True)
            self._sqlite = generate_sqlite(self.spec)
            self.generated["sqlite"] = {
                "file": self._sqlite[0].name,
                "seconds": self._sqlite[1].seconds,
            }
        return self._sqlite

    def postgres_ledger(self) -> tuple[str, Shape]:
        if self._postgres is None:
            print(f"generating {self.p.runs:,} runs on PostgreSQL ...", flush=True)
            url = self.dbs.postgres_url("ledger")
            self._postgres = (url, generate_postgres(self.spec, url))
            self.generated["postgresql"] = {"seconds": self._postgres[1].seconds}
        return self._postgres


def open_ledger(url: str, shape: Shape, **options: Any) -> Ledger:
    """A ledger on a generated database whose clock stands at its "now"."""
    clock = ManualClock(datetime.fromisoformat(shape.anchor))
    return Ledger(url, clock=clock, migrate=False, **options)


def overhead(s: Suite) -> list[Measure]:
    found: list[Measure] = []
    o, dbs = s.p.overhead, s.dbs
    ledger = Ledger(dbs.sqlite_url("overhead"))
    floor_sqlite = SqliteFloor(dbs.sqlite_url("floor").removeprefix("sqlite:///"))
    try:
        found.append(run_overhead("sqlite", ledger, floor_sqlite, o, 0.25, 6))
        found.append(items("sqlite", ledger, floor_sqlite, o, 200_000))
        found.append(counters(ledger, o, 2_000_000))
        found.append(hand_out("sqlite", ledger, o.reps, 50))
    finally:
        ledger.close()
        floor_sqlite.close()
    if dbs.pg_admin is None:
        print(f"PostgreSQL skipped: {dbs.pg_error}")
        return found
    ledger = Ledger(dbs.postgres_url("overhead"))
    floor_pg = PostgresFloor(dbs.postgres_url("floor"))
    try:
        found.append(run_overhead("postgresql", ledger, floor_pg, o, 2.0, 3))
        found.append(items("postgresql", ledger, floor_pg, o, 150_000))
        found.append(hand_out("postgresql", ledger, o.reps, 50))
    finally:
        ledger.close()
        floor_pg.close()
    return found


def queries(s: Suite) -> list[Measure]:
    found: list[Measure] = []
    targets: list[tuple[str, str, Shape]] = []
    path, shape = s.sqlite_ledger()
    targets.append(("sqlite", f"sqlite:///{path}", shape))
    if s.dbs.pg_admin is not None:
        url, pg_shape = s.postgres_ledger()
        targets.append(("postgresql", url, pg_shape))
    for backend, url, shape in targets:
        ledger = open_ledger(url, shape)
        try:
            found.append(reference(backend, ledger, s.p.query_reps))
            measured, plans = measure_queries(backend, ledger, shape, s.p.query_reps)
            found += measured
            s.plans[backend] = plans
        finally:
            ledger.close()
    return found


def maintenance(s: Suite) -> list[Measure]:
    found: list[Measure] = []
    path, shape = s.sqlite_ledger()
    targets = [("sqlite", f"sqlite:///{copy_sqlite(path, s.dbs.dir / 'maintenance.db')}", shape)]
    if s.dbs.pg_admin is not None:
        url, pg_shape = s.postgres_ledger()  # the last user of it: changed in place
        targets.append(("postgresql", url, pg_shape))
    for backend, url, shape in targets:
        seed_stale(url, shape, s.p.reap)
        ledger = open_ledger(url, shape)
        try:
            found.append(measure_reap(backend, ledger, s.p.reap))
            found += measure_prune(backend, ledger, url, shape, s.p)
        finally:
            ledger.close()
    return found


def api(s: Suite) -> list[Measure]:
    found: list[Measure] = []
    path, shape = s.sqlite_ledger()
    targets = [("sqlite", f"sqlite:///{path}", shape)]
    if s.dbs.pg_admin is not None:
        url, pg_shape = s.postgres_ledger()
        targets.append(("postgresql", url, pg_shape))
    for backend, url, shape in targets:
        step = max(1, shape.runs // 200)
        details = [f"/api/runs/{run_id}" for run_id in range(step, shape.runs + 1, step)]
        server = Server(url, shape.anchor)
        try:
            found.append(measure_endpoint(backend, "/api/runs", server, ["/api/runs"], s.p))
            found.append(measure_endpoint(backend, "/api/runs/{id}", server, details, s.p))
        finally:
            server.close()
    return found


def integrations(s: Suite) -> list[Measure]:
    return [celery_task(s.dbs, s.p), scrapy_crawl(s.dbs, s.p)]


def exec_command(s: Suite) -> list[Measure]:
    reps, batch = s.p.exec_reps
    found = [measure_exec("sqlite", s.dbs.sqlite_url("exec"), reps, batch)]
    if s.dbs.pg_admin is not None:
        found.append(measure_exec("postgresql", s.dbs.postgres_url("exec"), reps, batch))
    return found


def alerts(s: Suite) -> list[Measure]:
    """Issue 18: check() with 10,000 jobs, and the volume guard's cost."""
    reps = max(5, s.p.overhead.reps // 4)
    found = [check_cost("sqlite", s.dbs.sqlite_url("alerts"), reps)]
    if s.dbs.pg_admin is not None:
        found.append(check_cost("postgresql", s.dbs.postgres_url("alerts"), reps))
    found.extend(guard_cost(s.dbs.sqlite_url("guard"), max(50, s.p.overhead.reps * 10)))
    return found


def queue(s: Suite) -> list[Measure]:
    """Issue 17: trigger -> running, draining with 4 x 4 workers, the claim."""
    reps, drain = s.p.queue_reps, s.p.queue_drain
    found = [measure_latency("sqlite", s.dbs.sqlite_url("queue"), reps, 1.0, s.dbs.dir)]
    if s.dbs.pg_admin is None:
        print(f"PostgreSQL skipped: {s.dbs.pg_error}")
        return found
    found.append(measure_latency("postgresql", s.dbs.postgres_url("queue"), reps, 1.0, s.dbs.dir))
    found.append(measure_drain(s.dbs.postgres_url("drain"), drain, s.dbs.dir))
    url, shape = s.postgres_ledger()
    found.append(measure_claim(url, shape, s.p.query_reps * 5))
    return found


# In this order: maintenance changes the generated ledgers.
SECTIONS: dict[str, Callable[[Suite], list[Measure]]] = {
    "overhead": overhead,
    "queries": queries,
    "api": api,
    "queue": queue,  # before maintenance: the claim wants the whole generated ledger
    "maintenance": maintenance,
    "integrations": integrations,
    "exec": exec_command,
    "alerts": alerts,
}
