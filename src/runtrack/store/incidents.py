"""Issue 18's tables: expectations, incidents, deliveries, and what checking
them reads of the jobs. A part of the store over its transactions (and the
job rows, which an expectation names).

Every transition is one conditional statement whose row count says who won:
an incident opens by an insert that a unique ``open_key`` lets only one
process make, resolves by an update of a row still open, and a delivery is
claimed by moving its ``next_at`` from the value the claimer read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from runtrack.alerts import DeliveryRecord, DeliveryState, IncidentKind, IncidentRecord
from runtrack.expectations import Expect, stored
from runtrack.models import RATE_LIMITED, RunStatus
from runtrack.store.base import Transactions
from runtrack.store.checking import CheckState, read_state
from runtrack.store.jobs import JobStore
from runtrack.store.rows import aware, aware_required, incident_record, naive
from runtrack.store.schema import deliveries, expectations, incidents, jobs, runs

__all__ = ["AlertStore"]


class AlertStore:
    """The SQL of expectations, incidents and deliveries."""

    def __init__(self, tx: Transactions, jobs: JobStore) -> None:
        self.tx = tx
        self.jobs = jobs

    # -- expectations -------------------------------------------------------

    def set_expectation(self, job: str, expect: Expect, now: datetime) -> bool:
        """Store ``job``'s expectation; a default never replaces an explicit
        one. Returns whether it was written."""
        values = {**expect.as_row(), "updated_at": naive(now)}

        def work(conn: Connection) -> bool:
            stmt = update(expectations).where(expectations.c.job_key == job)
            if expect.origin == "default":
                stmt = stmt.where(expectations.c.origin == "default")
            if conn.execute(stmt.values(values)).rowcount == 1:
                return True
            exists = select(expectations.c.job_key).where(expectations.c.job_key == job)
            if conn.execute(exists).first() is not None:
                return False  # an explicit one stands
            try:
                with conn.begin_nested():
                    conn.execute(expectations.insert().values({"job_key": job, **values}))
            except IntegrityError:
                return False  # another process stored one meanwhile
            return True

        self.jobs.ensure_job(job, None, now)
        return self.tx.write(work)

    def expectations(self, job: str | None = None) -> dict[str, Expect]:
        query = select(expectations)
        if job is not None:
            query = query.where(expectations.c.job_key == job)
        rows = self.tx.read(lambda c: c.execute(query).all())
        return {row.job_key: stored(row) for row in rows}

    def volume_history(self, job: str) -> dict[str, list[float]]:
        """The job's last values of each guarded counter (``jobs.volume_history``)."""
        query = select(jobs.c.volume_history).where(jobs.c.key == job)
        found: dict[str, list[float]] | None = self.tx.read(lambda c: c.execute(query).scalar())
        return found or {}

    def check_state(self, now: datetime) -> CheckState:
        """What one check reads, in one transaction (see
        :func:`runtrack.store.checking.read_state`)."""
        at = naive(now)
        assert at is not None
        return self.tx.read(lambda conn: read_state(conn, at))

    # -- incidents ------------------------------------------------------------

    def list_incidents(
        self, job: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[IncidentRecord]:
        query = select(incidents).order_by(incidents.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(incidents.c.job_key == job)
        if open_only:
            query = query.where(incidents.c.open_key.is_not(None))
        return [incident_record(r) for r in self.tx.read(lambda c: c.execute(query).all())]

    def open_incident(
        self,
        job: str,
        kind: IncidentKind,
        now: datetime,
        details: dict[str, Any],
        run_id: int | None,
        notify: Any,
    ) -> IncidentRecord | None:
        """Open the job's incident of ``kind`` unless one is open; ``notify``
        (incident -> delivery rows) adds its deliveries in the same
        transaction. ``None``: another process opened it first."""
        open_key = f"{kind.value}:{job}"
        row = {
            "job_key": job,
            "kind": kind.value,
            "open_key": open_key,
            "opened_at": naive(now),
            "run_id": run_id,
            "details": details,
        }

        def work(conn: Connection) -> IncidentRecord | None:
            # A plain insert in a savepoint: insert-or-ignore row counts differ
            # by driver (RETURNING on PostgreSQL, FOUND_ROWS on MySQL).
            try:
                with conn.begin_nested():
                    conn.execute(incidents.insert().values(row))
            except IntegrityError:
                return None  # another checker opened it
            found = conn.execute(select(incidents).where(incidents.c.open_key == open_key)).one()
            record = incident_record(found)
            _add_deliveries(conn, notify(record, "opened"))
            return record

        return self.tx.write(work)

    def resolve_incident(
        self, incident: IncidentRecord, now: datetime, details: dict[str, Any], notify: Any
    ) -> IncidentRecord | None:
        """Resolve an open incident, with its deliveries; ``None``: another
        process resolved it first."""
        merged = {**incident.details, "resolution": details}

        def work(conn: Connection) -> IncidentRecord | None:
            stmt = (
                update(incidents)
                .where(incidents.c.id == incident.id, incidents.c.open_key.is_not(None))
                .values(open_key=None, resolved_at=naive(now), details=merged)
            )
            if conn.execute(stmt).rowcount != 1:
                return None
            found = conn.execute(select(incidents).where(incidents.c.id == incident.id)).one()
            record = incident_record(found)
            _add_deliveries(conn, notify(record, "resolved"))
            return record

        return self.tx.write(work)

    def remind(
        self, incident: IncidentRecord, now: datetime, due_before: datetime, notify: Any
    ) -> bool:
        """Mark a reminder of an open incident last reminded (or opened)
        before ``due_before``; one process wins it."""
        last = func.coalesce(incidents.c.reminded_at, incidents.c.opened_at)

        def work(conn: Connection) -> bool:
            stmt = (
                update(incidents)
                .where(
                    incidents.c.id == incident.id,
                    incidents.c.open_key.is_not(None),
                    last <= naive(due_before),
                )
                .values(reminded_at=naive(now))
            )
            if conn.execute(stmt).rowcount != 1:
                return False
            _add_deliveries(conn, notify(incident, "reminder"))
            return True

        return self.tx.write(work)

    # -- deliveries -------------------------------------------------------------

    def due_deliveries(self, now: datetime, limit: int = 100) -> list[DeliveryRecord]:
        query = (
            select(deliveries)
            .where(
                deliveries.c.state == DeliveryState.PENDING.value,
                deliveries.c.next_at <= naive(now),
            )
            .order_by(deliveries.c.next_at)
            .limit(limit)
        )
        return [_delivery(r) for r in self.tx.read(lambda c: c.execute(query).all())]

    def claim_delivery(self, delivery: DeliveryRecord, until: datetime) -> bool:
        """Take one attempt at a delivery: its ``next_at`` moves to ``until``
        (when another process may try, should this one die sending)."""
        stmt = (
            update(deliveries)
            .where(
                deliveries.c.id == delivery.id,
                deliveries.c.state == DeliveryState.PENDING.value,
                deliveries.c.next_at == naive(delivery.next_at),
            )
            .values(next_at=naive(until), attempts=deliveries.c.attempts + 1)
        )
        return bool(self.tx.write(lambda c: c.execute(stmt).rowcount) == 1)

    def delivery_result(
        self,
        delivery_id: int,
        state: DeliveryState,
        now: datetime,
        error: str | None,
        next_at: datetime | None,
    ) -> None:
        values: dict[str, Any] = {"state": state.value, "last_error": error}
        if state is DeliveryState.DELIVERED:
            values["delivered_at"] = naive(now)
        if next_at is not None:
            values["next_at"] = naive(next_at)
        stmt = (
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.state == DeliveryState.PENDING.value,
            )
            .values(values)
        )
        self.tx.write(lambda c: c.execute(stmt))

    def list_deliveries(
        self, incident_ids: Sequence[int] | None = None, limit: int = 200
    ) -> list[DeliveryRecord]:
        query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
        if incident_ids is not None:
            query = query.where(deliveries.c.incident_id.in_(list(incident_ids)))
        return [_delivery(r) for r in self.tx.read(lambda c: c.execute(query).all())]

    # -- health counts ------------------------------------------------------------

    def failed_started_since(self, since: datetime) -> tuple[int, int]:
        """Runs started since ``since`` that failed: (for good, retried or
        rate limited). A range of the (status, started_at) index."""
        not_final = or_(runs.c.retried.is_(True), runs.c.error_type == RATE_LIMITED)
        query = select(func.count(), func.sum(case((not_final, 1), else_=0))).where(
            and_(runs.c.status == RunStatus.FAILED.value, runs.c.started_at >= naive(since))
        )
        total, retried = self.tx.read(lambda c: c.execute(query).one())
        return int(total) - int(retried or 0), int(retried or 0)


def _add_deliveries(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(deliveries.insert(), rows)


def _delivery(row: Any) -> DeliveryRecord:
    m = row._mapping
    return DeliveryRecord(
        id=m["id"],
        incident_id=m["incident_id"],
        event=m["event"],
        sink=m["sink"],
        idempotency_key=m["idempotency_key"],
        state=DeliveryState(m["state"]),
        attempts=m["attempts"],
        last_error=m["last_error"],
        next_at=aware_required(m["next_at"]),
        give_up_at=aware_required(m["give_up_at"]),
        created_at=aware_required(m["created_at"]),
        delivered_at=aware(m["delivered_at"]),
        payload=dict(m["payload"] or {}),
    )
