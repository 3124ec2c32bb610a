"""Issue 18 on the web: response models of ``GET /api/incidents`` and the
metrics of incidents and job health (kept apart from
:mod:`runtrack.web.schemas` and :mod:`runtrack.web.metrics`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from pydantic import BaseModel, Field

from runtrack.alerts import IncidentKind, IncidentRecord
from runtrack.health import HealthState
from runtrack.ledger import Ledger

__all__ = ["AlertSnapshot", "IncidentList", "IncidentOut", "alert_families", "alert_snapshot"]


class IncidentOut(BaseModel):
    """An expectation broken: open while ``resolved_at`` is null."""

    id: int
    job: str
    kind: IncidentKind = Field(description="late, failing, volume or given_up.")
    open: bool
    opened_at: datetime
    resolved_at: datetime | None
    run_id: int | None = Field(description="The run that broke the expectation, if one did.")
    summary: str
    details: dict[str, Any]

    @classmethod
    def of(cls, i: IncidentRecord) -> IncidentOut:
        return cls(
            id=i.id,
            job=i.job,
            kind=i.kind,
            open=i.is_open,
            opened_at=i.opened_at,
            resolved_at=i.resolved_at,
            run_id=i.run_id,
            summary=i.summary,
            details=i.details,
        )


class IncidentList(BaseModel):
    data: list[IncidentOut]


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    """What a scrape reports of issue 18: open incidents, each job's health
    and first-seen time."""

    open_incidents: dict[str, int]
    health: dict[str, HealthState]
    first_seen: dict[str, float]


def alert_snapshot(ledger: Ledger) -> AlertSnapshot:
    counts = dict.fromkeys((k.value for k in IncidentKind), 0)
    for incident in ledger.incidents(open_only=True, limit=10_000):
        counts[incident.kind.value] += 1
    health = {key: h.state for key, h in ledger.healths().items()}
    seen = {s.job.key: s.job.created_at.timestamp() for s in ledger.job_states()}
    return AlertSnapshot(counts, health, seen)


def alert_families(s: AlertSnapshot | None) -> Iterator[Metric]:
    open_incidents = GaugeMetricFamily(
        "runtrack_open_incidents", "Incidents open now, per kind.", labels=["kind"]
    )
    health = GaugeMetricFamily(
        "runtrack_job_health",
        "1 for the job's current health state, 0 for the others.",
        labels=["job", "state"],
    )
    first_seen = GaugeMetricFamily(
        "runtrack_job_first_seen_timestamp_seconds",
        "Unix time when the job was first seen (for 'never succeeded' alerts).",
        labels=["job"],
    )
    if s is not None:
        for kind, count in s.open_incidents.items():
            open_incidents.add_metric([kind], count)
        for job, state in s.health.items():
            for each in HealthState:
                health.add_metric([job, each.value], 1 if each is state else 0)
        for job, at in s.first_seen.items():
            first_seen.add_metric([job], at)
    yield open_incidents
    yield health
    yield first_seen
