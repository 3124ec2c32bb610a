"""The Alembic migrations and ``store/schema.py`` describe the same database.

``alembic upgrade head`` on an empty database must produce exactly what
``metadata.create_all()`` would: same tables, columns, types, nullability,
indexes, unique constraints and foreign keys, on every supported database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from runtrack.store import dialects, migrate
from runtrack.store.schema import metadata


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
