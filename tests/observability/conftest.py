"""Fixtures for the lineage and logging tests (helpers in lineage_support)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from lineage_support import EventSchema, file_listener_at

from runtrack.lineage.listener import OpenLineageListener


@pytest.fixture(scope="session")
def event_schema() -> EventSchema:
    return EventSchema()


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return tmp_path / "lineage.jsonl"


@pytest.fixture
def file_listener(events_file: Path) -> Iterator[OpenLineageListener]:
    listener = file_listener_at(events_file)
    yield listener
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
