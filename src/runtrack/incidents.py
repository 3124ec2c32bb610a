"""Checking expectations: an incident opens when one breaks and resolves when
it holds again, once however many processes check (the store's conditional
writes), each transition queued for notification in its own transaction.

``Alerting`` is the ledger's part for issue 18: ``ledger.expect``,
``ledger.check``, ``ledger.incidents`` and ``ledger.deliver`` delegate here.
One check reads, in one transaction, only the jobs and incidents whose
state may change (the database picks them: :mod:`runtrack.store.checking`)
and the open incidents, then writes only the transitions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from runtrack.alerts import IncidentKind, IncidentRecord
from runtrack.expectations import Expect
from runtrack.health import late_since
from runtrack.notify.config import NotifySettings
from runtrack.notify.delivery import Deliverer
from runtrack.notify.payload import delivery_rows
from runtrack.store.incidents import AlertStore
from runtrack.store.jobs import JobStore
from runtrack.store.rows import naive
from runtrack.store.runs import RunStore
from runtrack.volume import VolumeGuard

__all__ = ["Alerting", "CheckResult"]

log = logging.getLogger("runtrack")


#: Incidents of a broken expectation (``given_up`` needs none).
EXPECTED = (IncidentKind.LATE, IncidentKind.FAILING, IncidentKind.VOLUME)
#: The resolution of an incident whose expectation holds again.
HOLDS = {"summary": "the expectation holds again"}


@dataclass(frozen=True, slots=True)
class _Bare:
    """A job without an expectation, as a transition reads it."""

    key: str
    last_success_run_id: int | None = None
    remind_every: float | None = None


@dataclass(slots=True)
class CheckResult:
    """What one check changed, and what is open after it."""

    opened: list[IncidentRecord] = field(default_factory=list)
    resolved: list[IncidentRecord] = field(default_factory=list)
    open: list[IncidentRecord] = field(default_factory=list)
    reminded: int = 0


class Alerting:
    """Expectations, incidents and their notifications on one store."""

    def __init__(
        self,
        alerts: AlertStore,
        runs: RunStore,
        jobs: JobStore,
        now: Callable[[], datetime],
        settings: NotifySettings | None = None,
    ) -> None:
        self.runs = runs
        self.jobs = jobs
        self.alerts = alerts
        self.now = now
        self.settings = settings if settings is not None else NotifySettings.from_env()
        self.deliverer = Deliverer(self.alerts, self.settings, now)
        self.volume = VolumeGuard(self.alerts)

    def expect(self, job: str, expect: Expect) -> bool:
        written = self.alerts.set_expectation(job, expect, self.now())
        self.volume.refresh()
        return written

    # -- checking ---------------------------------------------------------------

    def check(self) -> CheckResult:
        now = self.now()
        at = naive(now)
        assert at is not None
        state = self.alerts.check_state(now)
        is_open = {(i.job, i.kind) for i in state.open}
        result = CheckResult()
        for row in state.to_open:  # see runtrack.store.checking
            for kind in _broken(row, at):
                if (row.key, kind) not in is_open:
                    self._open(row, kind, _details(row, kind, at), now, result)
        by_id = {i.id: i for i in state.open}
        for row in state.may_change:
            incident = by_id.get(row.id)  # None: opened by another checker meanwhile
            if incident is None:
                continue
            if row.expects is None:  # its job no longer expects anything
                self._resolve(None, incident, {"summary": "no expectation any more"}, now, result)
            elif incident.kind in _broken(row, at):
                self._remind(row, incident, now, result)
            else:
                self._resolve(row, incident, HOLDS, now, result)
        given_up = {i.job: i for i in state.open if i.kind is IncidentKind.GIVEN_UP}
        self._check_given_up(state.given_up, given_up, now, result)
        resolved = {i.id for i in result.resolved}
        result.open.extend(i for i in state.open if i.id not in resolved)
        result.open.extend(result.opened)
        return result

    def _check_given_up(
        self,
        counts: dict[str, int],
        open_now: dict[str, IncidentRecord],
        now: datetime,
        result: CheckResult,
    ) -> None:
        """Any job (expectations or not) with carried entries given up after
        ``max_carry_attempts`` has a ``given_up`` incident (``open_now``: those
        open, by job), until an operator forgets them (``runtrack carried JOB
        --forget ID``)."""
        for job, count in counts.items():
            incident = open_now.pop(job, None)
            if incident is None:
                broken = {"summary": f"{job}: {count} carried item(s) or slice(s) given up"}
                self._open(_Bare(job), IncidentKind.GIVEN_UP, broken, now, result)
            else:
                self._remind(_Bare(job), incident, now, result)
        for incident in open_now.values():
            summary = {"summary": "nothing given up any more"}
            self._resolve(None, incident, summary, now, result)

    def _open(
        self,
        row: Any,
        kind: IncidentKind,
        broken: dict[str, Any],
        now: datetime,
        result: CheckResult,
    ) -> None:
        run_id = broken.pop("run_id", None)
        notify = self._notifier(row, run_id, now)
        opened = self.alerts.open_incident(row.key, kind, now, broken, run_id, notify)
        if opened is not None:
            result.opened.append(opened)
            log.warning("incident %s opened: %s %s", opened.id, kind.value, row.key)

    def _resolve(
        self,
        row: Any,
        incident: IncidentRecord,
        details: dict[str, Any],
        now: datetime,
        result: CheckResult,
    ) -> None:
        run_id = row.last_success_run_id if row is not None else None
        notify = self._notifier(row, run_id, now)
        resolved = self.alerts.resolve_incident(incident, now, details, notify)
        if resolved is not None:
            result.resolved.append(resolved)
            log.info("incident %s resolved: %s %s", incident.id, incident.kind, incident.job)

    def _remind(
        self, row: Any, incident: IncidentRecord, now: datetime, result: CheckResult
    ) -> None:
        every = row.remind_every
        if not every:
            return
        due_before = now - timedelta(seconds=every)
        if self.alerts.remind(incident, now, due_before, self._notifier(row, incident.run_id, now)):
            result.reminded += 1

    def _notifier(
        self, row: Any, run_id: int | None, now: datetime
    ) -> Callable[[IncidentRecord, str], list[dict[str, Any]]]:
        """The delivery rows of a transition (built only if it happens)."""

        def rows(incident: IncidentRecord, event: str) -> list[dict[str, Any]]:
            if not self.settings.sinks:
                return []
            run = self.runs.get_run(run_id) if run_id is not None else None
            return delivery_rows(
                incident, event, self._job_summary(incident), run, self.settings, now
            )

        return rows

    def _job_summary(self, incident: IncidentRecord) -> dict[str, Any]:
        """The job as a notification describes it (read at the transition)."""
        job = self.jobs.get_job(incident.job)
        last = self.runs.get_run(job.last_run_id) if job and job.last_run_id else None
        error = None
        if last is not None and last.error_type:
            error = f"{last.error_type}: {last.error_message or ''}".strip()
        return {
            "key": incident.job,
            "provider": job.provider if job else None,
            "last_success_at": job.last_success_at.isoformat()
            if job and job.last_success_at
            else None,
            "failure_streak": job.consecutive_failures if job else 0,
            "last_error": error,
        }

    # -- delivering ----------------------------------------------------------------

    def deliver(self) -> int:
        """Send the deliveries that are due, here and now."""
        return self.deliverer.deliver_due()


def _broken(row: Any, at: datetime) -> tuple[IncidentKind, ...]:
    """The kinds of the job's broken expectations (``at``: now, naive UTC as
    the row's times): comparisons only, no object built."""
    broken: tuple[IncidentKind, ...] = ()
    within = row.success_within
    if within is not None and late_since(row.last_success_at, row.created_at, at, within):
        broken += (IncidentKind.LATE,)
    limit = row.max_failures
    if limit is not None and row.consecutive_failures >= limit:
        broken += (IncidentKind.FAILING,)
    if _anomaly(row):
        broken += (IncidentKind.VOLUME,)
    return broken


def _details(row: Any, kind: IncidentKind, at: datetime) -> dict[str, Any]:
    """The details of a broken expectation of ``kind`` (built only when an
    incident opens or is reminded)."""
    if kind is IncidentKind.LATE:
        late = late_since(row.last_success_at, row.created_at, at, row.success_within)
        return {"summary": f"{row.key}: {late}"}
    if kind is IncidentKind.FAILING:
        return {
            "summary": f"{row.key}: {row.consecutive_failures} tick(s) in a row failed "
            f"(at most {row.max_failures - 1} expected)",
            "run_id": row.last_run_id,
        }
    anomaly = _anomaly(row) or {}
    return {
        "summary": f"{row.key}: {anomaly.get('summary')}",
        "run_id": anomaly.get("run_id"),
        "anomalies": anomaly.get("anomalies", []),
    }


def _anomaly(row: Any) -> dict[str, Any] | None:
    anomaly: dict[str, Any] | None = row.volume_anomaly
    return anomaly
