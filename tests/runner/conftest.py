"""Fixtures of the runner tests: a ledger on a hand-moved clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_processes import Workers

from runtrack import Ledger, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def manual_ledger(db_url: str, clock: ManualClock) -> Iterator[Ledger]:
    """A ledger whose time only moves when the test moves ``clock``."""
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as opened:
        yield opened


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Real runner processes (``worker_app.py``), killed at the end if still alive."""
    started = Workers(tmp_path)
    yield started
    started.kill_all()
