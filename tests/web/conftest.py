"""Fixtures of the HTTP tests: a seeded ledger and a client of the app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chromium import chromium
from fastapi.testclient import TestClient
from playwright.sync_api import Browser
from web_seed import TOKEN, Seeded, make_client, seed

from runtrack import Ledger


@pytest.fixture
def seeded(ledger: Ledger) -> Seeded:
    return seed(ledger)


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:
    """The app with an API token configured and open reads."""
    with make_client(ledger, api_token=TOKEN) as opened:
        yield opened


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module of browser tests."""
    with chromium() as launched:
        yield launched
