"""Fixtures of the CLI tests (helpers are in cli_helpers.py)."""

from __future__ import annotations

from typing import Any

import pytest
from cli_helpers import Invoke, Outcome, Seeded, invoke_in_process, seed

from runtrack import Ledger


@pytest.fixture
def cli(db_url: str) -> Invoke:
    """``cli("runs", "--json")`` runs the command on the test's database."""

    def call(*args: str, **kwargs: Any) -> Outcome:
        return invoke_in_process(db_url, *args, **kwargs)

    return call


@pytest.fixture
def seeded(ledger: Ledger) -> Seeded:
    return seed(ledger)
