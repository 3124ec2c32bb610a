"""Fixtures of the reliability suite: sizes (``--long`` for the big numbers),
the figures every test reports, real worker processes and the fault proxy.

The figures (runs, kills, outages, races, items; lost / stuck / double-run
counts) are printed at the end of the session and written to
``test-output/reliability.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from reliability_support import DEFAULT, FIGURES, LONG, Figures, Sizes, Worker, Zygote

LONG_OPTION = "--long"


@pytest.fixture(scope="session")
def sizes(request: pytest.FixtureRequest) -> Sizes:
    return LONG if request.config.getoption(LONG_OPTION, default=False) else DEFAULT


# -- figures -------------------------------------------------------------------------

_SIZES: list[Sizes] = []


@pytest.fixture(scope="session")
def figures(sizes: Sizes) -> Figures:
    _SIZES[:] = [sizes]
    return FIGURES


@pytest.fixture
def timed(request: pytest.FixtureRequest, figures: Figures) -> Iterator[None]:
    """Adds the test's duration to its module's figures."""
    began = time.monotonic()
    yield
    figures.timed(request.module.__name__.removeprefix("test_"), time.monotonic() - began)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES.counts:
        return
    report = FIGURES.as_dict(_SIZES[0] if _SIZES else None)
    out = Path(str(terminalreporter.config.rootpath)) / "test-output" / "reliability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    write = terminalreporter.write_line
    terminalreporter.section(f"reliability figures ({report['mode']})")
    write("totals: " + ", ".join(f"{k}={v}" for k, v in report["totals"].items()))
    for section, backends in report["sections"].items():
        for backend, counts in sorted(backends.items()):
            text = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
            write(f"{section:<14} {backend:<11} {text}")
    write(f"seconds: {report['seconds']}")
    write(f"written to {out.relative_to(terminalreporter.config.rootpath)}")


# -- processes ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    """The process that forks the suite's workers (see reliability_workers.py)."""
    started = Zygote(tmp_path_factory.mktemp("zygote") / "workers.log")
    yield started
    started.close()


@pytest.fixture
def spawn(zygote: Zygote) -> Iterator[Callable[..., Worker]]:
    """``spawn("crash", url, ...)``: a worker process; any still alive at the
    end of the test is killed."""
    started: list[Worker] = []

    def start(name: str, *args: object) -> Worker:
        worker = zygote.start(name, *args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


# -- the fault proxy -----------------------------------------------------------------------


@pytest.fixture
def proxy(db_url: str) -> Iterator[FaultProxy]:
    """A cuttable TCP proxy in front of the test's database server."""
    opened = FaultProxy.for_url(db_url)
    yield opened
    opened.close()
