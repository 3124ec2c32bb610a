"""Opening a ledger migrates it, twice is fine, and nothing closes the engine."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import sqlalchemy as sa

from runtrack import Ledger, RunStatus
from runtrack.store import dialects, migrate
from runtrack.store.schema import metadata


def _drop_everything(url: str) -> None:
    engine = dialects.make_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def test_open_twice_leaves_schema_at_head(db_url: str) -> None:
    with Ledger(db_url) as first, Ledger(db_url) as second:
        with first.run("jobs:a"):
            pass
        assert second.list_runs().items[0].job == "jobs:a"
        assert migrate.current_revision(first.engine) == migrate.head_revision()


def test_database_at_older_revision_is_upgraded(db_url: str) -> None:
    _drop_everything(db_url)
    engine = dialects.make_engine(db_url)
    migrate.upgrade(engine, "0001")
    assert migrate.current_revision(engine) == "0001"
    assert not sa.inspect(engine).has_table("run_items")
    with Ledger(engine=engine) as ledger:
        assert migrate.current_revision(engine) == migrate.head_revision()
        with ledger.run("jobs:after-upgrade") as run:
            run.item("k", "success")
        assert ledger.get_run(run.id).items["success"] == 1
    engine.dispose()


def test_open_migrate_and_use_in_one_call_on_a_given_engine(db_url: str) -> None:
    """A ledger that migrates must not close the engine/connection it then uses."""
    _drop_everything(db_url)
    engine = dialects.make_engine(db_url)
    with Ledger(engine=engine) as ledger, ledger.run("jobs:same-cycle") as run:
        run.count("n")
    # The caller's engine is still usable after the ledger closed.
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM runs")).scalar_one()
    assert status == RunStatus.SUCCESS
    engine.dispose()


def test_a_new_sqlite_ledger_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Params, checkpoints and errors are in the file: 0600, with the -wal
    and -shm files SQLite makes beside it, whatever the umask allows."""
    previous = os.umask(0o022)
    try:
        path = tmp_path / "private.db"
        with Ledger(f"sqlite:///{path}") as ledger:
            with ledger.run("jobs:private", params={"token": "x"}):
                pass
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        assert modes == {f.name: 0o600 for f in files}
        shared = tmp_path / "shared.db"
        shared.touch(mode=0o640)  # an existing file keeps what its owner chose
        with Ledger(f"sqlite:///{shared}"):
            pass
        assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    finally:
        os.umask(previous)
