"""Migration 0012 (issue 18): a job's stored volume anomaly moves to its own
column, the history keeps only the guarded counters' values, and the guard
and checking go on from what was stored; downgrading puts it back."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import command
from test_migrations_match_schema import _reset

from runtrack import Ledger, ManualClock, RunStatus, Volume
from runtrack.alerts import IncidentKind
from runtrack.store import dialects, migrate

AT = datetime(2026, 1, 1)  # noqa: DTZ001 - columns hold naive UTC
OLD_JOBS = sa.table(
    "jobs",
    sa.column("key", sa.String),
    sa.column("created_at", sa.DateTime),
    sa.column("consecutive_failures", sa.Integer),
    sa.column("volume_history", sa.JSON),
)
VALUES = {"offers": [1000.0, 1010.0, 990.0, 1005.0, 995.0]}
ANOMALY = {"run_id": 7, "summary": "offers 80 vs median 1,000 (-92%)", "anomalies": ["x"]}


def _old_job(conn: sa.Connection, key: str, stored: object) -> None:
    row = {"key": key, "created_at": AT, "consecutive_failures": 0, "volume_history": stored}
    conn.execute(sa.insert(OLD_JOBS).values(row))


def _stored(engine: sa.Engine) -> dict[str, tuple[object, ...]]:
    with engine.connect() as conn:
        table = sa.Table("jobs", sa.MetaData(), autoload_with=conn)
        columns = [table.c.key, table.c.volume_history]
        if "volume_anomaly" in table.c:
            columns.append(table.c.volume_anomaly)
        rows = conn.execute(sa.select(*columns).order_by(table.c.key)).all()
    decode = sa.JSON().result_processor(engine.dialect, None)
    return {
        r[0]: tuple(decode(v) if isinstance(v, str | bytes) and decode else v for v in r[1:])
        for r in rows
    }


def test_0012_moves_the_anomaly_to_its_column_and_back(db_url: str) -> None:
    engine = dialects.make_engine(db_url)
    _reset(engine)
    migrate.upgrade(engine, "0011")
    with engine.begin() as conn:
        _old_job(conn, "old:flagged", {"values": VALUES, "anomaly": ANOMALY})
        _old_job(conn, "old:fine", {"values": VALUES, "anomaly": None})
        _old_job(conn, "old:plain", None)
    migrate.upgrade(engine)
    assert _stored(engine) == {
        "old:fine": (VALUES, None),
        "old:flagged": (VALUES, ANOMALY),
        "old:plain": (None, None),
    }

    with Ledger(db_url, clock=ManualClock()) as ledger:
        for key in ("old:flagged", "old:fine"):
            ledger.expect(key, volume={"offers": Volume(min_ratio=0.2)})
        (opened,) = ledger.check().opened  # the stored anomaly is an incident
        assert (opened.kind, opened.job) == (IncidentKind.VOLUME, "old:flagged")
        with ledger.run("old:fine") as run:  # judged by the migrated history
            run.count("offers", 80)
        assert ledger.get_run(run.id).status is RunStatus.PARTIAL
    with engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0011")
        conn.commit()
    stored = _stored(engine)
    assert stored["old:flagged"] == ({"values": VALUES, "anomaly": ANOMALY},)
    assert stored["old:plain"] == (None,)
    migrate.upgrade(engine)  # the next tests on this database expect the head
    engine.dispose()
