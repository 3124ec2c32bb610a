"""The unit tier's guard holds: no test here can reach a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtrack import Ledger
from runtrack.store import dialects


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/unit.db",
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "mysql://root@127.0.0.1:3306/mysql",
    ],
    ids=["sqlite", "postgresql", "mariadb"],
)
def test_no_driver_connects_in_the_unit_tier(url: str, tmp_path: Path) -> None:
    engine = dialects.make_engine(url.format(tmp=tmp_path))
    try:
        with pytest.raises(AssertionError, match="pure logic"):
            engine.connect()
    finally:
        engine.dispose()


def test_a_ledger_cannot_open_in_the_unit_tier(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="pure logic"):
        Ledger(f"sqlite:///{tmp_path}/unit.db")
