"""Job state in the store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    func,
    select,
    update,
)

from runtrack.models import (
    JobRecord,
    RunOutcome,
)
from runtrack.store import dialects
from runtrack.store.base import Transactions
from runtrack.store.rows import (
    job_record,
    naive,
    run_outcomes,
)
from runtrack.store.schema import (
    jobs,
)

#: A job's state without its status strip (read only by the overview).
JOB_STATE = tuple(
    column
    for column in jobs.c
    if column.name not in ("recent_runs", "volume_history", "volume_anomaly")
)


class JobStore:
    """Job rows: creation, state, the runner's schedule claims."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    # -- jobs -------------------------------------------------------------

    def ensure_job(self, key: str, provider: str | None, now: datetime) -> None:
        values = {
            "key": key,
            "provider": provider,
            "created_at": naive(now),
            "consecutive_failures": 0,
        }
        self.tx.write(lambda c: c.execute(dialects.insert_ignore(c, jobs, values)))

    def get_job(self, key: str) -> JobRecord | None:
        row = self.tx.read(lambda c: c.execute(select(*JOB_STATE).where(jobs.c.key == key)).first())
        return job_record(row) if row else None

    def provider_job_counts(self) -> dict[str, int]:
        """How many jobs each provider has."""
        query = (
            select(jobs.c.provider, func.count())
            .where(jobs.c.provider.is_not(None))
            .group_by(jobs.c.provider)
        )
        return {row[0]: int(row[1]) for row in self.tx.read(lambda c: c.execute(query).all())}

    def list_jobs(self, provider: str | None = None) -> list[JobRecord]:
        query = select(*JOB_STATE).order_by(jobs.c.key)
        if provider is not None:
            query = query.where(jobs.c.provider == provider)
        return [job_record(r) for r in self.tx.read(lambda c: c.execute(query).all())]

    def job_providers(self) -> dict[str, str | None]:
        query = select(jobs.c.key, jobs.c.provider).order_by(jobs.c.key)
        return {key: provider for key, provider in self.tx.read(lambda c: c.execute(query).all())}

    def get_jobs(self, keys: Sequence[str]) -> list[JobRecord]:
        """The jobs with these keys (unknown keys are left out)."""
        query = select(*JOB_STATE).where(jobs.c.key.in_(list(keys))).order_by(jobs.c.key)
        return [job_record(r) for r in self.tx.read(lambda c: c.execute(query).all())]

    def recent_outcomes(self, keys: Sequence[str] | None) -> dict[str, list[RunOutcome]]:
        """Each job's strip of last finished runs, newest first (all jobs, or
        those of ``keys``)."""
        query = select(jobs.c.key, jobs.c.recent_runs)
        if keys is not None:
            query = query.where(jobs.c.key.in_(list(keys)))
        rows = self.tx.read(lambda c: c.execute(query).all())
        return {key: run_outcomes(strip) for key, strip in rows}

    def claim_tick(self, key: str, due: datetime | None, next_due: datetime) -> bool:
        """Move the job's ``next_due_at`` from ``due`` to ``next_due`` if it is
        still ``due``: the one caller whose update changes the row owns the tick."""
        seen = jobs.c.next_due_at.is_(None) if due is None else jobs.c.next_due_at == naive(due)
        stmt = update(jobs).where(jobs.c.key == key, seen).values(next_due_at=naive(next_due))
        return bool(self.tx.write(lambda c: c.execute(stmt).rowcount) == 1)

    def skip_tick(self, key: str, reason: str, now: datetime) -> bool:
        """Count a due tick of the job that was skipped, with when and why,
        in one UPDATE; False if the job has no row."""
        stmt = (
            update(jobs)
            .where(jobs.c.key == key)
            .values(
                ticks_skipped=jobs.c.ticks_skipped + 1,
                last_skipped_at=naive(now),
                last_skip_reason=reason,
            )
        )
        return bool(self.tx.write(lambda c: c.execute(stmt).rowcount) == 1)
