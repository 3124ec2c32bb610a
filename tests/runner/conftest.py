"""Fixtures of the runner tests: real runner processes (``clock`` and
``manual_ledger`` are the suite's, in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_processes import Workers


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Real runner processes (``worker_app.py``), killed at the end if still alive."""
    started = Workers(tmp_path)
    yield started
    started.kill_all()
