"""Prometheus metrics at ``/metrics``, read from the database.

Many workers share one database, so process-local counters would each see a
fraction of the runs; the collector reads the ledger instead, at most once per
``ttl`` seconds however often it is scraped. Each scrape reads the job tallies
that finalization maintains, the jobs, the pauses and two counts on the status
indexes: its cost follows the number of jobs and active runs, never the
number of runs in the history. No label carries a run id.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from runtrack.ledger import Ledger
from runtrack.models import JobState, JobTally, ProviderState
from runtrack.store.schema import DURATION_BOUNDS
from runtrack.web.incidents import AlertSnapshot, alert_families, alert_snapshot

__all__ = ["LedgerCollector", "Snapshot", "registry_for", "router"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one scrape reports, read from the ledger."""

    tallies: list[JobTally]
    jobs: list[JobState]
    providers: list[ProviderState]
    stale: int
    #: Issue 18: open incidents, job health, first-seen times.
    alerts: AlertSnapshot | None = None


class LedgerCollector(Collector):
    """Collects runtrack's metrics from a ledger, cached for ``ttl`` seconds."""

    def __init__(self, ledger: Ledger, ttl: float = 5.0) -> None:
        self._ledger = ledger
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, Snapshot] | None = None

    def snapshot(self) -> Snapshot:
        """What a scrape reports, read at most once per ``ttl`` seconds.
        One refresh at a time: concurrent scrapes wait for it and share it."""
        with self._lock:
            cached = self._cached
            if cached is not None and time.monotonic() - cached[0] < self._ttl:
                return cached[1]
            ledger = self._ledger
            snapshot = Snapshot(
                ledger.job_tallies(),
                ledger.job_states(),
                ledger.providers(),
                ledger.count_stale(),
                alert_snapshot(ledger),
            )
            self._cached = (time.monotonic(), snapshot)
            return snapshot

    def describe(self) -> Iterable[Metric]:
        # Registering must not query the database: declare names only.
        return list(_families(Snapshot([], [], [], 0)))

    def collect(self) -> Iterable[Metric]:
        return list(_families(self.snapshot()))


def _families(s: Snapshot) -> Iterator[Metric]:
    yield _runs_total(s.tallies)
    yield _durations(s.tallies)
    yield _items_total(s.tallies)
    last_success = GaugeMetricFamily(
        "runtrack_job_last_success_timestamp_seconds",
        "Unix time when the job's latest successful run finished.",
        labels=["job"],
    )
    active = GaugeMetricFamily(
        "runtrack_active_runs", "Runs pending or running, per job.", labels=["job"]
    )
    for state in s.jobs:
        active.add_metric([state.job.key], state.active_runs)
        # Issue 18: every job has a series (0: never succeeded), so "no
        # success for X" alerts fire for jobs that never succeeded too.
        done = state.job.last_success_at
        last_success.add_metric([state.job.key], done.timestamp() if done else 0.0)
    yield last_success
    yield active
    yield GaugeMetricFamily(
        "runtrack_stale_runs",
        "Active runs silent for longer than the stale threshold (not yet reaped).",
        value=s.stale,
    )
    paused = GaugeMetricFamily(
        "runtrack_provider_paused", "1 while the provider is paused, else 0.", labels=["provider"]
    )
    for provider in s.providers:
        paused.add_metric([provider.name], 1 if provider.pause is not None else 0)
    yield paused
    yield from alert_families(s.alerts)


def _runs_total(tallies: list[JobTally]) -> Metric:
    family = CounterMetricFamily(
        "runtrack_runs",
        "Runs that ended, by job, provider and final status.",
        labels=["job", "provider", "status"],
    )
    for t in tallies:
        family.add_metric([t.job, t.provider or "", t.status.value], t.runs)
    return family


def _items_total(tallies: list[JobTally]) -> Metric:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for t in tallies:
        for status, n in t.items.items():
            totals[(t.job, status)] += n
    family = CounterMetricFamily(
        "runtrack_items",
        "Items recorded by runs that ended, by job and item status.",
        labels=["job", "status"],
    )
    for (job, status), n in sorted(totals.items()):
        family.add_metric([job, status], n)
    return family


def _durations(tallies: list[JobTally]) -> Metric:
    buckets: dict[str, list[int]] = {}
    counts: dict[str, int] = defaultdict(int)
    sums: dict[str, float] = defaultdict(float)
    for t in tallies:
        per_bound = buckets.setdefault(t.job, [0] * len(DURATION_BOUNDS))
        for i, n in enumerate(t.duration_buckets):
            per_bound[i] += n
        counts[t.job] += t.duration_count
        sums[t.job] += t.duration_sum
    family = HistogramMetricFamily(
        "runtrack_run_duration_seconds",
        "Duration (start to finish) of runs that ended, by job.",
        labels=["job"],
    )
    for job in sorted(buckets):
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(DURATION_BOUNDS, buckets[job], strict=True):
            running += n
            cumulative.append((str(float(bound)), float(running)))
        cumulative.append(("+Inf", float(counts[job])))
        family.add_metric([job], cumulative, sum_value=sums[job])
    return family


def registry_for(ledger: Ledger, ttl: float = 5.0) -> CollectorRegistry:
    """A registry of its own for one app (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(LedgerCollector(ledger, ttl))
    return registry


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text exposition (the guard asks for the read token if one
    is configured)."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
