"""Fixtures of the multi-host tier: sizes (``--long`` for the full figures),
the private PostgreSQL server and the simulated hosts (made once per session,
removed at the end), and the figures printed at the end of the session and
written to ``test-output/hosts.json``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hosts_support import DEFAULT, FIGURES, LONG, Network, PrivatePostgres, Sizes, why_not

from runtrack.store import dialects, migrate

LONG_TIMEOUT = 1800  # seconds
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The fleet runs for minutes with --long, past the suite's 300 s timeout.
    if config.getoption("--long", default=False):
        for item in items:
            if item.get_closest_marker("hosts") is not None:
                item.add_marker(pytest.mark.timeout(LONG_TIMEOUT))


@pytest.fixture(scope="session")
def sizes(request: pytest.FixtureRequest) -> Sizes:
    return LONG if request.config.getoption("--long", default=False) else DEFAULT


@pytest.fixture(scope="session")
def machine() -> Iterator[tuple[PrivatePostgres, Network]]:
    """The private server and three hosts; removed at the end, idempotently."""
    reason = why_not()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true requires the hosts tier: {reason}")
        pytest.skip(f"hosts tier: {reason}")
    server, network = PrivatePostgres(), Network()
    try:
        network.create()  # first: the server listens on the bridge's address
        server.start()
        engine = dialects.make_engine(server.url)
        migrate.upgrade(engine)
        engine.dispose()
        yield server, network
    finally:
        network.destroy()
        server.destroy()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    out = Path(str(terminalreporter.config.rootpath)) / "test-output" / "hosts.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")
    terminalreporter.section(f"hosts figures ({FIGURES.get('mode')})")
    terminalreporter.write_line(", ".join(f"{k}={v}" for k, v in FIGURES.items()))
    terminalreporter.write_line(f"written to {out.relative_to(terminalreporter.config.rootpath)}")
