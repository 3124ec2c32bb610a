"""The library's traps for a newcomer: a finished run's handle that refuses
loudly, an unmigrated database that says so (the message first in every
error marker is in tests/unit/test_retry_markers.py, the runner's traps in
tests/runner/test_runner_traps.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from runtrack import Ledger
from runtrack.errors import RunFinished, SchemaMissing
from runtrack.store import dialects, migrate
from runtrack.store.schema import metadata


def test_any_call_on_a_finished_run_raises_run_finished(ledger: Ledger) -> None:
    with ledger.run("maps:geocode") as run:
        run.count("rows")
    calls = [
        lambda: run.count("rows"),
        lambda: run.set_counter("rows", 3),
        lambda: run.set_total(3),
        lambda: run.advance(),
        lambda: run.item("a", "success"),
        lambda: run.error("late"),
        lambda: run.note("late"),
        lambda: run.save_checkpoint({"page": 2}),
        run.check_cancelled,
    ]
    for call in calls:
        with pytest.raises(RunFinished, match=f"run {run.id} has ended \\(success\\)"):
            call()
    assert not run.cancel_requested
    assert ledger.get_run(run.id).counters == {"rows": 1}


def test_an_unmigrated_database_says_the_schema_is_missing(db_url: str) -> None:
    engine = dialects.make_engine(db_url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    try:
        with Ledger(db_url, migrate=False) as ledger:
            with pytest.raises(SchemaMissing, match="runtrack migrate"):
                ledger.job_states()
            with pytest.raises(SchemaMissing, match="no runtrack schema"), ledger.run("maps:x"):
                pass
    finally:
        migrate.upgrade(engine)
        engine.dispose()
