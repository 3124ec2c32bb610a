"""Fixtures of the alerting tests (issue 18): a real local webhook receiver
(``clock`` and ``manual_ledger`` are the suite's, in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from receivers import Webhook, start_webhook


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A receiver that records every POST (see receivers.py)."""
    hook = start_webhook()
    yield hook
    hook.close()
