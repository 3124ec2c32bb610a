"""Records of issue 18's alerting: incidents and their deliveries (frozen,
as the store returns them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["DeliveryRecord", "DeliveryState", "IncidentKind", "IncidentRecord"]


class IncidentKind(StrEnum):
    """Which expectation broke."""

    LATE = "late"  # no success within success_within
    FAILING = "failing"  # max_failures ticks in a row failed for good
    VOLUME = "volume"  # the last run's counters broke the volume guard
    GIVEN_UP = "given_up"  # carried items or slices were given up


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An incident: open while ``resolved_at`` is ``None``."""

    id: int
    job: str
    kind: IncidentKind
    opened_at: datetime
    resolved_at: datetime | None
    reminded_at: datetime | None
    run_id: int | None
    details: dict[str, Any]

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def summary(self) -> str:
        return str(self.details.get("summary") or self.kind.value)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One notification of one incident transition to one sink."""

    id: int
    incident_id: int
    event: str
    sink: str
    idempotency_key: str
    state: DeliveryState
    attempts: int
    last_error: str | None
    next_at: datetime
    give_up_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
