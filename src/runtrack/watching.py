"""Health, expectations and incidents as the :class:`~runtrack.ledger.Ledger`
offers them: the checks of each call's arguments, then the alerting part
(:mod:`runtrack.incidents`), which is made on first use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from runtrack import inputs
from runtrack.alerts import DeliveryRecord, IncidentRecord
from runtrack.errors import InvalidInput, describe
from runtrack.expectations import Expect, Volume, expect_from
from runtrack.health import JobHealth, judge
from runtrack.incidents import Alerting, CheckResult
from runtrack.queries import Queries
from runtrack.store.incidents import AlertStore
from runtrack.store.jobs import JobStore
from runtrack.store.runs import RunStore

__all__ = ["Watch"]


class Watch:
    """The ledger's part for issue 18's health, expectations and incidents."""

    def __init__(
        self,
        alerts: AlertStore,
        runs: RunStore,
        jobs: JobStore,
        now: Callable[[], datetime],
        queries: Queries,
    ) -> None:
        self.alerts = alerts
        self.runs = runs
        self.jobs = jobs
        self.now = now
        self.queries = queries
        self._alerting: Alerting | None = None

    @property
    def alerting(self) -> Alerting:
        """The part that checks expectations and notifies (made on first use,
        with ``RUNTRACK_NOTIFY*`` read then)."""
        if self._alerting is None:
            self._alerting = Alerting(self.alerts, self.runs, self.jobs, self.now)
        return self._alerting

    def expect(
        self,
        job: str,
        *,
        success_within: timedelta | float | str | None = None,
        max_failures: int | None = None,
        volume: dict[str, Volume] | None = None,
        required: Sequence[str] | None = None,
        remind_every: timedelta | float | str | None = None,
    ) -> Expect:
        """Store what ``job`` promises (replacing what it promised): a success
        within ``success_within``, fewer than ``max_failures`` failed ticks in
        a row, counters within :class:`Volume` bounds, ``required`` counters
        above 0 on a success; open incidents are re-reminded every
        ``remind_every``. Checked by :meth:`check` in any process."""
        inputs.key("job", job)
        expect = expect_from(success_within, max_failures, volume, required, remind_every)
        self.alerting.expect(job, expect)
        return expect

    def expectations(self, job: str | None = None) -> dict[str, Expect]:
        """The stored expectations, by job."""
        inputs.key("job", job, optional=True)
        return self.alerting.alerts.expectations(job)

    def check(self) -> CheckResult:
        """Evaluate every job's expectations: open and resolve incidents (once
        across processes) and queue their notifications."""
        return self.alerting.check()

    def incidents(
        self, job: str | None = None, *, open_only: bool = False, limit: int = 100
    ) -> list[IncidentRecord]:
        """Incidents, newest first."""
        inputs.key("job", job, optional=True)
        inputs.flag("open_only", open_only)
        inputs.positive_int("limit", limit, limit=10_000)
        return self.alerting.alerts.list_incidents(job, open_only, limit)

    def deliver(self) -> int:
        """Send the notifications that are due now; returns how many were delivered."""
        return self.alerting.deliver()

    def deliveries(self, incident_ids: Sequence[int] | None = None) -> list[DeliveryRecord]:
        """Notifications of incidents (all, or of these), newest first: state,
        attempts, last error."""
        if incident_ids is not None:
            if not isinstance(incident_ids, list | tuple):
                raise InvalidInput(
                    "incident_ids", f"got {describe(incident_ids)}", "a list of incident ids"
                )
            incident_ids = [inputs.positive_int("incident id", i) for i in incident_ids]
        return self.alerting.alerts.list_deliveries(incident_ids)

    def count_failed(self, since: datetime) -> tuple[int, int]:
        """Runs started since ``since`` that failed: (for good, retried or rate limited)."""
        checked = inputs.timestamp("since", since, optional=False)
        assert checked is not None
        since = checked
        return self.alerting.alerts.failed_started_since(since)

    def healths(self, provider: str | None = None) -> dict[str, JobHealth]:
        """Every job's health (of ``provider``), by job: four queries in all."""
        inputs.key("provider", provider, optional=True)
        now, expects, outcomes = self.now(), self.expectations(), self.queries.recent_outcomes()
        found = {}
        for state in self.queries.job_states(provider):
            key = state.job.key
            found[key] = judge(
                state,
                outcomes.get(key, []),
                now=now,
                success_within=expects[key].success_within if key in expects else None,
            )
        return found

    def job_health(self, job: str) -> JobHealth:
        """The job's health: healthy, running, retrying, failing, late or paused."""
        inputs.key("job", job)
        state = self.queries.job_state(job)
        expect = self.expectations(job).get(job)
        return judge(
            state,
            self.queries.recent_outcomes([job]).get(job, []),
            now=self.now(),
            success_within=expect.success_within if expect else None,
        )
