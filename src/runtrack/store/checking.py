"""What checking expectations reads (issue 18), set-based: the database
picks the few jobs and incidents that may change, so a check over 10,000
jobs with nothing new to say builds no object per job.

Two directions: the jobs with an expectation that may be broken and no
incident of its kind open (:func:`to_open`), and the open incidents whose
expectation may hold again, is gone, or has reminders (:func:`may_change`).
Lateness is tested in SQL with a second's slack either way
(:data:`LATE_SLACK`) and judged exactly in Python, so the databases' time
arithmetic never decides a transition.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, and_, bindparam, exists, func, or_, select

from runtrack.alerts import IncidentKind, IncidentRecord
from runtrack.store import dialects
from runtrack.store.rows import incident_record
from runtrack.store.schema import carried, expectations, incidents, jobs

__all__ = ["LATE_SLACK", "CheckRow", "CheckState", "may_change", "read_state", "to_open"]

#: Seconds of slack in the SQL test for "late" (see the module doc).
LATE_SLACK = 1.0

#: What checking reads of a job that needs checking.
CHECK_COLUMNS = (
    jobs.c.key,
    jobs.c.created_at,
    jobs.c.last_success_at,
    jobs.c.consecutive_failures,
    jobs.c.last_run_id,
    jobs.c.last_success_run_id,
    jobs.c.volume_anomaly,
    expectations.c.success_within,
    expectations.c.max_failures,
    expectations.c.remind_every,
)

CheckRow = Any  # a row of CHECK_COLUMNS


class CheckState(NamedTuple):
    """What a check reads: the jobs with an expectation broken and no
    incident of its kind open (:func:`to_open`), the open incidents, those
    of them that may resolve or be reminded with their job's row
    (:func:`may_change`), and the given-up counts."""

    to_open: list[CheckRow]
    open: list[IncidentRecord]
    may_change: list[CheckRow]
    given_up: dict[str, int]


def read_state(conn: Connection, now: datetime) -> CheckState:
    """One check's reads (``now``: naive UTC), on one connection."""
    dialect, at = conn.dialect.name, {"p_now": now}
    to_open_rows = conn.execute(to_open(dialect), at).all()
    open_query = select(incidents).where(incidents.c.open_key.is_not(None))
    opened = [incident_record(row) for row in conn.execute(open_query)]
    changing = conn.execute(may_change(dialect), at).all() if opened else []
    given_up = (
        select(carried.c.job_key, func.count())
        .where(carried.c.state == "given_up")
        .group_by(carried.c.job_key)
    )
    counts = {key: int(n) for key, n in conn.execute(given_up)}
    return CheckState(list(to_open_rows), opened, list(changing), counts)


class _Tests(NamedTuple):
    maybe_late: Any
    surely_late: Any
    failing: Any
    anomaly: Any


def _tests(dialect: str) -> _Tests:
    since = func.coalesce(jobs.c.last_success_at, jobs.c.created_at)
    elapsed = dialects.seconds_between(dialect, since, bindparam("p_now", type_=since.type))
    within = expectations.c.success_within
    limit = expectations.c.max_failures
    return _Tests(
        and_(within.is_not(None), elapsed > within - LATE_SLACK),
        and_(within.is_not(None), elapsed > within + LATE_SLACK),
        and_(limit.is_not(None), jobs.c.consecutive_failures >= limit),
        jobs.c.volume_anomaly.is_not(None),
    )


@functools.cache
def to_open(dialect: str) -> Select[Any]:
    """The jobs with an expectation that may be broken and no incident of
    its kind open (``p_now``: naive UTC); the open-incident probes run only
    for those that may be broken."""

    def none_open(kind: IncidentKind) -> Any:
        return ~exists().where(
            incidents.c.job_key == jobs.c.key,
            incidents.c.kind == kind.value,
            incidents.c.open_key.is_not(None),
        )

    t = _tests(dialect)
    return (
        select(*CHECK_COLUMNS)
        .join(expectations, expectations.c.job_key == jobs.c.key)
        .where(
            or_(
                and_(t.maybe_late, none_open(IncidentKind.LATE)),
                and_(t.failing, none_open(IncidentKind.FAILING)),
                and_(t.anomaly, none_open(IncidentKind.VOLUME)),
            )
        )
    )


@functools.cache
def may_change(dialect: str) -> Select[Any]:
    """The open incidents of broken expectations that may resolve (their
    expectation not surely broken any more, or gone: ``expects`` NULL) or be
    reminded, each with its job's row (``p_now``: naive UTC)."""
    t = _tests(dialect)
    kind = incidents.c.kind
    return (
        select(incidents.c.id, expectations.c.job_key.label("expects"), *CHECK_COLUMNS)
        .select_from(incidents)
        .join(jobs, jobs.c.key == incidents.c.job_key)
        .outerjoin(expectations, expectations.c.job_key == jobs.c.key)
        .where(
            incidents.c.open_key.is_not(None),
            kind != IncidentKind.GIVEN_UP.value,
            or_(
                expectations.c.job_key.is_(None),
                expectations.c.remind_every.is_not(None),
                and_(kind == IncidentKind.LATE.value, ~t.surely_late),
                and_(kind == IncidentKind.FAILING.value, ~t.failing),
                and_(kind == IncidentKind.VOLUME.value, ~t.anomaly),
            ),
        )
    )
