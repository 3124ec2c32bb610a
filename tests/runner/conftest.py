"""Fixtures of the runner tests: a ledger on a hand-moved clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtrack import Ledger, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def manual_ledger(db_url: str, clock: ManualClock) -> Iterator[Ledger]:
    """A ledger whose time only moves when the test moves ``clock``."""
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as opened:
        yield opened
