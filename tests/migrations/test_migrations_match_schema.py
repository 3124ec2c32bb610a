"""The Alembic migrations and ``store/schema.py`` describe the same database.

``alembic upgrade head`` on an empty database must produce exactly what
``metadata.create_all()`` would: same tables, columns, types, nullability,
indexes, unique constraints and foreign keys, on every supported database.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from runtrack import JobBusy, Ledger
from runtrack.store import dialects, migrate
from runtrack.store.schema import jobs, metadata, provider_pauses, run_items, runs


def _reset(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


def _same_type(
    context: Any, inspected: Any, metadata_column: Any, inspected_type: Any, metadata_type: Any
) -> bool | None:
    # MariaDB stores JSON as LONGTEXT with a json_valid() check: not a drift.
    if context.dialect.name in ("mysql", "mariadb") and isinstance(metadata_type, sa.JSON):
        return False
    return None  # let Alembic decide


def _diff(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": _same_type})
        return compare_metadata(context, metadata)


def test_upgrade_head_matches_create_all(db_url: str) -> None:
    engine = dialects.make_engine(db_url)
    _reset(engine)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _diff(engine) == []
    engine.dispose()


def test_every_revision_upgrades_and_downgrades(db_url: str) -> None:
    engine = dialects.make_engine(db_url)
    _reset(engine)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate._config(conn), "base")
        conn.commit()
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert _diff(engine) == []
    engine.dispose()


@pytest.mark.parametrize("revision", ["0001", "0002"])
def test_data_survives_upgrade_from_old_revision(db_url: str, revision: str) -> None:
    engine = dialects.make_engine(db_url)
    _reset(engine)
    migrate.upgrade(engine, revision)
    old_jobs = sa.table(
        "jobs", sa.column("key"), sa.column("created_at"), sa.column("consecutive_failures")
    )
    with engine.begin() as conn:
        conn.execute(
            sa.insert(old_jobs).values(
                key="old:job",
                created_at=datetime(2026, 1, 1),  # noqa: DTZ001 - columns hold naive UTC
                consecutive_failures=0,
            )
        )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one() == 1
    engine.dispose()


def _collations(engine: sa.Engine) -> dict[tuple[str, str], tuple[str, str]]:
    """(table, column) -> (type, collation) of every character column of
    runtrack's tables (MySQL/MariaDB only)."""
    query = sa.text(
        "SELECT table_name, column_name, data_type, collation_name "
        "FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND collation_name IS NOT NULL"
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return {(t, c): (kind, collation) for t, c, kind, collation in rows if t in metadata.tables}


# Collations are MySQL/MariaDB's: SQLite and PostgreSQL compare bytes already
# (tests/ledger/test_exact_keys.py checks the behaviour on all three).
@pytest.mark.parametrize("backend", ["mariadb"])
@pytest.mark.parametrize("build", ["migrations", "create_all"])
def test_every_varchar_compares_exactly_on_mariadb(db_url: str, build: str) -> None:
    engine = dialects.make_engine(db_url)
    _reset(engine)
    if build == "migrations":
        migrate.upgrade(engine)
    else:
        with engine.begin() as conn:
            metadata.create_all(conn)
    found = _collations(engine)
    varchars = {
        (table.name, column.name)
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, sa.String) and not isinstance(column.type, sa.Text)
    }
    assert {key for key, (kind, _) in found.items() if kind == "varchar"} == varchars
    exact = dialects.exact_collation(engine.dialect)
    assert exact == "utf8mb4_nopad_bin"  # the MariaDB the tests run on
    assert {found[key][1] for key in varchars} == {exact}
    engine.dispose()


def _rows(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        # Sorted here: the databases order by their collation, which changes.
        # The tables and columns as they are at this revision, not as at head.
        present = set(sa.inspect(conn).get_table_names())
        tables = {
            t.name: sa.select(sa.Table(t.name, sa.MetaData(), autoload_with=conn))
            for t in metadata.sorted_tables
            if t.name in present
        }
        return {name: sorted(tuple(r) for r in conn.execute(q)) for name, q in tables.items()}


def test_0007_keeps_the_data_and_tells_keys_apart(db_url: str) -> None:
    engine = dialects.make_engine(db_url)
    _reset(engine)
    migrate.upgrade(engine, "0006")
    folds = engine.dialect.name == "mysql"  # the old collation let a run name its job so
    at = datetime(2026, 1, 1)  # noqa: DTZ001 - columns hold naive UTC
    run = {
        "status": "running", "attempt": 1, "triggered_by": "Ana", "created_at": at,
        "progress_done": 0, "moves_watermark": True, "items_success": 1,
        "items_not_found": 1, "items_skipped": 0, "items_error": 0,
    }  # fmt: skip
    with engine.begin() as conn:
        for key in ("old:Job", "old:café"):
            conn.execute(sa.insert(jobs).values(key=key, provider="Amazon", created_at=at))
        first = conn.execute(
            sa.insert(runs).values({**run, "uid": "u1", "job_key": "old:Job", "status": "success"})
        ).inserted_primary_key[0]
        held = "old:job" if folds else "old:Job"
        conn.execute(
            sa.insert(runs).values(
                {**run, "uid": "u2", "job_key": held, "lease_key": f"{held}#0"}
                | {"heartbeat_at": dialects.now_sql(conn)}  # alive: its lease holds
            )
        )
        for key, group in (("SKU-1", "SKU-a"), ("sku-1", "sku-A")):
            conn.execute(
                sa.insert(run_items).values(
                    run_id=first, key=key, status="success", group_key=group, recorded_at=at
                )
            )
        conn.execute(
            sa.insert(provider_pauses).values(
                provider="Amazon", paused_until=at, reason="429", paused_at=at
            )
        )
    before = _rows(engine)
    migrate.upgrade(engine, "0007")
    after = _rows(engine)
    if folds:  # respelled as its job row spells it, lease included
        assert [r[1:3] for r in after["runs"]] == [("u1", "old:Job"), ("u2", "old:Job")]
        lease = runs.c.keys().index("lease_key")
        assert after["runs"][1][lease] == "old:Job#0"
        after["runs"] = before["runs"]
    assert after == before  # nothing else changed, byte for byte
    engine.dispose()

    with Ledger(db_url) as ledger:
        with ledger.run("old:JOB"), ledger.run("old:cafe"), ledger.run("old:café "):
            pass
        assert sorted(j.key for j in ledger.jobs()) == [
            "old:JOB", "old:Job", "old:cafe", "old:café", "old:café "
        ]  # fmt: skip
        assert [i.key for i in ledger.list_items(first, group="SKU-a").items] == ["SKU-1"]
        with pytest.raises(JobBusy):  # the old run still holds its job's lease
            ledger.start_run("old:Job")
        ledger.pause("amazon", for_=60, reason="another provider")
        assert sorted(p.provider for p in ledger.pauses()) == ["amazon"]  # Amazon's ended
        assert ledger.paused("Amazon") is None


def test_the_newest_shipped_file_is_the_head() -> None:
    # Opening an up-to-date ledger compares the stored revision with the
    # newest NNNN_*.py file instead of asking alembic: they must agree.
    assert migrate.newest_shipped_revision() == migrate.head_revision()


def test_opening_an_up_to_date_ledger_loads_neither_alembic_nor_rich(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    code = (
        "import sys; from runtrack import Ledger; "
        f"Ledger({url!r}).close(); Ledger({url!r}).close(); "
        "print(sorted(m for m in ('alembic', 'rich', 'typer', 'croniter') if m in sys.modules))"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert first.stdout.strip() == "['alembic']"  # the first open migrated the new file
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "[]"
