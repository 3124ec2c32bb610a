"""Migration 0017 (issue 21): the jobs that exist get ``ticks_skipped`` 0 and
no last skip, a skip is then recorded on them, and the downgrade drops the
columns again."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import command
from test_migrations_match_schema import _reset

from runtrack import Ledger, ManualClock
from runtrack.store import dialects, migrate

AT = datetime(2026, 1, 1)  # noqa: DTZ001 - columns hold naive UTC
OLD_JOBS = sa.table(
    "jobs",
    sa.column("key", sa.String),
    sa.column("created_at", sa.DateTime),
    sa.column("consecutive_failures", sa.Integer),
)
SKIP_COLUMNS = {"ticks_skipped", "last_skipped_at", "last_skip_reason"}


def _columns(engine: sa.Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("jobs")}


def test_0017_gives_existing_jobs_no_skips_then_records_them(db_url: str) -> None:
    engine = dialects.make_engine(db_url)
    _reset(engine)
    migrate.upgrade(engine, "0016")
    assert not SKIP_COLUMNS & _columns(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(OLD_JOBS).values(key="old:job", created_at=AT, consecutive_failures=0)
        )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT ticks_skipped, last_skipped_at, last_skip_reason FROM jobs")
        ).one()
    assert tuple(row) == (0, None, None)

    clock = ManualClock()
    with Ledger(db_url, clock=clock, migrate=False) as ledger:
        ledger.skip_tick("old:job", reason="busy: 1 of 1 slot held by run 9")
        ledger.skip_tick("old:job", reason="provider acme at its limit of 2 running runs")
        job = ledger.get_job("old:job")
    assert job is not None
    assert (job.ticks_skipped, job.last_skipped_at, job.last_skip_reason) == (
        2,
        clock.now(),
        "provider acme at its limit of 2 running runs",
    )

    with engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0016")
        conn.commit()
    assert not SKIP_COLUMNS & _columns(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(OLD_JOBS.c.key)).scalars().all() == ["old:job"]
    migrate.upgrade(engine)
    engine.dispose()
