"""The documented webhook payload (``"version": 1``) and the rows that
queue one delivery of it per sink.

```json
{
  "version": 1,
  "event": "opened",                 // opened | resolved | reminder
  "idempotency_key": "rt-12-opened-1-5d41402a",
  "incident": {"id": 12, "kind": "late", "job": "shop:offers",
               "opened_at": "...", "resolved_at": null, "summary": "...",
               "details": {...}},
  "job": {"key": "shop:offers", "provider": "shop", "last_success_at": "...",
          "failure_streak": 0, "last_error": "ValueError: ..."},
  "run": {"id": 981, "status": "failed", "error_type": "...", ...} | null,
  "link": "https://runtrack.example/jobs/shop:offers" | null,
  "title": "...", "text": "..."
}
```
A receiver that sees an ``idempotency_key`` twice got the same notification
twice (a sender died after sending, before recording it).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from urllib.parse import quote

from runtrack.alerts import DeliveryState, IncidentRecord
from runtrack.models import RunRecord
from runtrack.notify.config import NotifySettings
from runtrack.store.rows import naive

__all__ = ["delivery_rows", "payload"]

PAYLOAD_VERSION = 1


def payload(
    incident: IncidentRecord,
    event: str,
    job: dict[str, Any],
    run: RunRecord | None,
    settings: NotifySettings,
    key: str,
) -> dict[str, Any]:
    link = (
        f"{settings.public_url}/jobs/{quote(incident.job, safe=':')}"
        if settings.public_url
        else None
    )
    verb = {"opened": "OPEN", "resolved": "RESOLVED", "reminder": "STILL OPEN"}.get(event, event)
    title = f"[runtrack] {verb}: {incident.kind.value} · {incident.job}"
    text = incident.summary + (f"\n{link}" if link else "")
    return {
        "version": PAYLOAD_VERSION,
        "event": event,
        "idempotency_key": key,
        "incident": {
            "id": incident.id,
            "kind": incident.kind.value,
            "job": incident.job,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "summary": incident.summary,
            "details": incident.details,
        },
        "job": job,
        "run": _run(run),
        "link": link,
        "title": title,
        "text": text,
    }


def delivery_rows(
    incident: IncidentRecord,
    event: str,
    job: dict[str, Any],
    run: RunRecord | None,
    settings: NotifySettings,
    now: datetime,
) -> list[dict[str, Any]]:
    """One pending delivery per sink. The key names the transition (a
    reminder by its time) and the sink, never a secret of its URL."""
    rows = []
    stamp = "" if event != "reminder" else f"-{int(now.timestamp())}"
    for sink in settings.sinks:
        digest = hashlib.sha256(sink.encode()).hexdigest()[:8]
        key = f"rt-{incident.id}-{event}{stamp}-{digest}"
        rows.append(
            {
                "incident_id": incident.id,
                "event": event,
                "sink": sink,
                "idempotency_key": key,
                "state": DeliveryState.PENDING.value,
                "attempts": 0,
                "next_at": naive(now),
                "give_up_at": naive(now + settings.give_up_after),
                "created_at": naive(now),
                "payload": payload(incident, event, job, run, settings, key),
            }
        )
    return rows


def _run(run: RunRecord | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "status": run.status.value,
        "attempt": run.attempt,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error_type": run.error_type,
        "error_message": run.error_message,
        "counters": run.counters,
    }
