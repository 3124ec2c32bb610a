"""Measure 4: every query the API, the dashboard and /metrics make, called
through the Ledger methods they use, on a generated ledger at scale.

Each query is timed call by call; the statements it sent are captured once
(untimed) and their plans recorded, so that a regression to a table scan or
an OFFSET walk shows in the results file even when the machine is fast.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import event, text

from bench.generate import RARE_LABEL, TEAMS, Shape
from bench.results import Measure, Target
from bench.timing import summarize
from runtrack import Ledger, RunStatus
from runtrack.models import ACTIVE
from runtrack.queries import encode_cursor
from runtrack.web.metrics import LedgerCollector

__all__ = ["QUERY_P95_MS", "measure_queries"]

QUERY_P95_MS = 5.0
Query = tuple[str, Callable[[], object]]


def api_queries(ledger: Ledger, shape: Shape) -> list[Query]:
    """What ``/api`` asks (see runtrack/web/api.py), by route."""
    job = shape.job_keys[1]
    deep = encode_cursor(max(2, shape.runs // 100))  # 99% of the way down, by id
    middle = datetime.fromisoformat(shape.anchor) - timedelta(days=45)
    run_id = shape.runs // 2
    team, rare = {"team": TEAMS[0]}, dict([RARE_LABEL])
    return [
        ("runs page 1", lambda: ledger.list_runs(limit=20)),
        ("runs deep page (cursor)", lambda: ledger.list_runs(limit=20, cursor=deep)),
        ("runs by job", lambda: ledger.list_runs(job=job, limit=20)),
        ("runs by job, deep (cursor)", lambda: ledger.list_runs(job=job, limit=20, cursor=deep)),
        ("runs by status failed", lambda: ledger.list_runs(status="failed", limit=20)),
        ("runs by status running", lambda: ledger.list_runs(status="running", limit=20)),
        ("runs by provider", lambda: ledger.list_runs(provider="provider-3", limit=20)),
        ("runs by triggered_by", lambda: ledger.list_runs(triggered_by="user:alice", limit=20)),
        (
            "runs by time window",
            lambda: ledger.list_runs(since=middle, until=middle + timedelta(hours=6), limit=20),
        ),
        ("runs by job+status", lambda: ledger.list_runs(job=job, status="failed", limit=20)),
        # Issue 16: labels. Every run has a team (1 in 5 match); 1% the rare one.
        ("runs by label", lambda: ledger.list_runs(labels=team, limit=20)),
        (
            "runs by label, deep (cursor)",
            lambda: ledger.list_runs(labels=team, limit=20, cursor=deep),
        ),
        ("runs by rare label", lambda: ledger.list_runs(labels=rare, limit=20)),
        ("runs by two labels", lambda: ledger.list_runs(labels={**team, **rare}, limit=20)),
        ("runs by label+status", lambda: ledger.list_runs(labels=team, status="failed", limit=20)),
        ("run detail", lambda: ledger.get_run(run_id)),
        ("items page", lambda: ledger.list_items(shape.items_run, limit=100)),
        ("item groups", lambda: ledger.group_summary(shape.items_run)),
        ("recent runs", lambda: ledger.recent_runs(5)),
        ("jobs (all)", lambda: ledger.job_states()),
        ("job detail", lambda: (ledger.job_state(job), ledger.list_runs(job=job, limit=10))),
        ("providers", lambda: ledger.providers()),
        ("health", lambda: ledger.health()),
        ("runs numbered page 1 (+total)", lambda: ledger.list_runs_by_page(1, limit=20)),
    ]


def dashboard_queries(ledger: Ledger, shape: Shape) -> list[Query]:
    """What the dashboard pages ask (see runtrack/web/pages/), by page."""
    job = shape.job_keys[1]
    now = datetime.fromisoformat(shape.anchor)

    def overview() -> object:
        ledger.job_states()
        strips()
        return overview_counts(), ledger.pauses(), ledger.list_runs(status="failed", limit=8)

    def strips() -> object:
        # The strip cells as the page reads them (parsing included) and the
        # active runs it appends to them.
        return ledger.recent_outcomes(), ledger.active_runs()

    def overview_counts() -> object:
        return (
            ledger.count_stale(),
            ledger.count_started(RunStatus.FAILED, since=now - timedelta(hours=24)),
        )

    def job_page() -> object:
        ledger.job_state(job)
        ledger.recent_outcomes([job])
        ledger.recent_runs_of_jobs([job], limit=200)
        return ledger.active_runs(job), ledger.list_runs(job=job, limit=20)

    def runs_page() -> object:
        ledger.list_runs(limit=50)
        return ledger.job_providers(), ledger.count_runs(status=sorted(ACTIVE))

    def run_page() -> object:
        return ledger.get_run(shape.items_run), ledger.list_items(shape.items_run, limit=50)

    return [
        ("overview page (all)", overview),
        ("  status strips, 200 jobs x 30, and active runs", strips),
        ("  counts: stale, failed in 24 h", overview_counts),
        ("runs page", runs_page),
        ("run page", run_page),
        ("job page", job_page),
        ("last success", lambda: ledger.last_successful_run(job)),
        ("last success (never)", lambda: ledger.last_successful_run(shape.never_succeeded)),
    ]


def maintenance_queries(ledger: Ledger, shape: Shape) -> list[Query]:
    now = datetime.fromisoformat(shape.anchor)
    # No cache: every scrape reads the ledger.
    registry, collector = CollectorRegistry(), LedgerCollector(ledger, ttl=0)
    registry.register(collector)
    stale = now - ledger.stale_after
    return [
        ("stale-run scan (reaper)", lambda: ledger.store.liveness.stale_runs(stale, stale, 1000)),
        ("metrics scrape: its reads", collector.snapshot),
    ]


def metrics_rendering(ledger: Ledger, backend: str, reps: int) -> Measure:
    """A whole ``/metrics`` scrape: its reads plus prometheus_client's text
    exposition of every sample (no target: the text grows with jobs x
    histogram buckets, not with the history)."""
    registry = CollectorRegistry()
    registry.register(LedgerCollector(ledger, ttl=0))
    text = generate_latest(registry)
    samples = sum(1 for line in text.splitlines() if not line.startswith(b"#"))
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    return Measure(
        key=f"query.{backend}.maintenance.metrics scrape, whole",
        title=f"maintenance metrics scrape with text rendering, {name}",
        unit="ms",
        stats=summarize(timed(lambda: generate_latest(registry), reps)),
        notes=f"{samples:,} samples rendered by prometheus_client",
    )


class Statements:
    """The statements a call sends through SQLAlchemy, captured untimed."""

    def __init__(self, ledger: Ledger) -> None:
        self.engine = ledger.engine
        self.sent: list[tuple[str, Any]] = []

    def _seen(self, _c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        self.sent.append((statement, params))

    def of(self, call: Callable[[], object]) -> list[tuple[str, Any]]:
        self.sent = []
        event.listen(self.engine, "before_cursor_execute", self._seen)
        try:
            call()
        finally:
            event.remove(self.engine, "before_cursor_execute", self._seen)
        return [(s, p) for s, p in self.sent if s.lstrip().upper().startswith("SELECT")]

    def plans(self, call: Callable[[], object]) -> list[tuple[str, Any, str]]:
        """(statement, parameters, plan) of each SELECT the call sends."""
        found = []
        prefix = (
            "EXPLAIN QUERY PLAN "
            if self.engine.dialect.name == "sqlite"
            else "EXPLAIN (COSTS OFF) "
        )
        for statement, params in self.of(call):
            with self.engine.connect() as conn:
                rows = conn.exec_driver_sql(prefix + statement, params).all()
            found.append((statement, params, " | ".join(str(r[-1]) for r in rows)))
        return found


_FULL_SCANS = ("SCAN runs", "SCAN run_items", "Seq Scan on runs", "Seq Scan on run_items")


def _offsets(sql: str, params: Any) -> list[int]:
    """The OFFSET values of a statement (SQLAlchemy writes ``OFFSET 0`` with
    every SQLite LIMIT, which skips nothing)."""
    found = []
    for match in re.finditer(r"OFFSET (\?|%\((\w+)\)s)", sql):
        if match.group(2) is not None:
            found.append(int(params[match.group(2)]))
        else:
            found.append(int(params[sql.count("?", 0, match.start())]))
    return found


def _scans(statements: list[tuple[str, Any, str]]) -> list[str]:
    """What makes a statement cost more as the history grows: an OFFSET, or
    a big table read whole (a plan step without an index) with no LIMIT."""
    bad = []
    for sql, params, plan in statements:
        upper = sql.upper()
        if any(_offsets(sql, params)):
            bad.append("OFFSET")
        if " LIMIT " in upper:
            continue
        for step in plan.split(" | "):
            s = step.strip()
            if s.startswith(_FULL_SCANS) and " USING " not in s:
                bad.append(s)
            elif s.startswith("SCAN runs USING COVERING INDEX") and "(" not in s:
                bad.append(s)  # SQLite counting every row of an index
            elif "Index Only Scan" in s and "on runs" in s and "Cond" not in plan:
                bad.append(s)
    return bad


def measure_queries(
    backend: str, ledger: Ledger, shape: Shape, reps: int
) -> tuple[list[Measure], dict[str, Any]]:
    """Time every query; returns the table lines and the plans."""
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    groups = [
        ("api", api_queries(ledger, shape)),
        ("dashboard", dashboard_queries(ledger, shape)),
        ("maintenance", maintenance_queries(ledger, shape)),
    ]
    capture = Statements(ledger)
    found: list[Measure] = []
    plans: dict[str, Any] = {}
    for group, queries in groups:
        for title, call in queries:
            call()  # warm: connection, compiled statement, pages in cache
            stats = summarize(timed(call, reps))
            plan = capture.plans(call)
            scans = _scans(plan)
            plans[f"{group}: {title}"] = [p for _, _, p in plan]
            checks = [(f"p95 <= {QUERY_P95_MS:g} ms", stats.p95 <= QUERY_P95_MS)]
            found.append(
                Measure(
                    key=f"query.{backend}.{group}.{title.strip()}",
                    title=f"{group} {title}, {name}",
                    unit="ms",
                    stats=stats,
                    target=Target(f"p95 <= {QUERY_P95_MS:g} ms", tuple(checks)),
                    notes="; ".join(scans),
                    extra={"statements": len(plan), "full_scans": scans},
                )
            )
    found.append(metrics_rendering(ledger, backend, reps))
    return found, plans


def reference(backend: str, ledger: Ledger, reps: int) -> Measure:
    """One trivial round trip through the same engine: how fast this machine
    answers anything right now (context for the query figures)."""
    with ledger.engine.connect() as conn:
        samples = timed(lambda: conn.execute(text("SELECT 1")).scalar(), reps)
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    return Measure(
        key=f"query.{backend}.reference",
        title=f"reference: SELECT 1, {name}",
        unit="ms",
        stats=summarize(samples),
    )


def timed(call: Callable[[], object], reps: int) -> list[float]:
    """Milliseconds of each of ``reps`` calls."""
    samples = []
    for _ in range(reps):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples
