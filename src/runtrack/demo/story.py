"""The demo from start to end: open the ledger, run the simulated jobs for a
while next to the operator's scenarios, print the summary, serve the
dashboard."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from runtrack.config import Settings
from runtrack.demo.jobs import INCREMENTAL, DemoJob, demo_jobs
from runtrack.demo.operator import Operator
from runtrack.demo.sources import Simulation
from runtrack.demo.summary import print_summary
from runtrack.ledger import Ledger
from runtrack.runner import Runner

__all__ = ["DEMO_TIMING", "run_demo"]

#: Short liveness timings so that a dead worker is reaped within seconds.
DEMO_TIMING = {"heartbeat_interval": 0.2, "stale_after": 1.0, "cancel_grace": 3.0}


def run_demo(
    settings: Settings,
    *,
    duration: float,
    seed: int,
    serve: tuple[str, int] | None,
    console: Console | None = None,
) -> None:
    """Run the demo on ``settings.database_url`` for ``duration`` seconds."""
    out = console or Console(highlight=False)
    demo_settings = settings.with_(**DEMO_TIMING)
    with Ledger.from_settings(demo_settings) as ledger:
        _intro(out, ledger, duration, seed)
        jobs, backfill = demo_jobs(Simulation(seed))
        for job in jobs:  # a previous demo's pause would skip this one's jobs
            ledger.resume(job.provider)
        since = ledger.now()
        operator = Operator(ledger, backfill)
        operator.start()
        _run_jobs(ledger, jobs, duration)
        operator.join(timeout=30.0)
        print_summary(out, ledger, since, operator.stories, incremental=INCREMENTAL)
        _outro(out, ledger)
        if serve is not None:
            from runtrack.web.server import serve_app

            serve_app(ledger, demo_settings, *serve)


def _intro(out: Console, ledger: Ledger, duration: float, seed: int) -> None:
    where = ledger.engine.url
    if where.get_backend_name() == "sqlite" and where.database:
        shown = f"SQLite file {os.path.abspath(where.database)}"
    else:
        shown = where.render_as_string(hide_password=True)
    out.print(f"runtrack demo: ledger in {shown}", markup=False, soft_wrap=True)
    out.print(
        f"simulated providers, no network; seed {seed}; running for {duration:g} s "
        f"(heartbeat every {ledger.heartbeat_interval:g} s, "
        f"dead after {ledger.stale_after.total_seconds():g} s)",
        markup=False,
    )


def _outro(out: Console, ledger: Ledger) -> None:
    rt = _command()
    commands = f"{rt} runs | {rt} show ID | {rt} jobs | {rt} providers"
    commands += " (with RUNTRACK_DATABASE_URL set to this ledger, as below)"
    out.print(f"explore: {commands}", markup=False, soft_wrap=True)
    out.print(
        f"export RUNTRACK_DATABASE_URL={_shareable_url(ledger)}", markup=False, soft_wrap=True
    )


def _shareable_url(ledger: Ledger) -> str:
    """The ledger's URL to copy: a SQLite path made absolute (it works from
    any directory), a server's password hidden (the user knows it)."""
    where = ledger.engine.url
    if where.get_backend_name() == "sqlite" and where.database:
        return shlex.quote(f"sqlite:///{os.path.abspath(where.database)}")
    if where.password:
        return shlex.quote(where.render_as_string(hide_password=True))
    return shlex.quote(ledger.url)


def _command() -> str:
    """``runtrack`` if it is on PATH, else the path of this virtualenv's one
    (``make demo`` does not activate ``.venv``)."""
    script = Path(sys.executable).with_name("runtrack")
    found = shutil.which("runtrack")
    if not script.exists() or (found and Path(found).resolve() == script.resolve()):
        return "runtrack"
    relative = os.path.relpath(script)
    return str(script) if relative.startswith("..") else relative


def _run_jobs(ledger: Ledger, jobs: list[DemoJob], duration: float) -> None:
    """Run the scheduled jobs with a Runner: one full cycle (every job runs at
    least once, however short the demo), then on schedule until ``duration``
    seconds have passed (Ctrl-C stops it early, gracefully)."""
    deadline = time.monotonic() + duration
    runner = Runner(ledger, jitter=0, grace=1, reap_every="1s", prune_every=None)
    for job in jobs:
        runner.job(job.key, provider=job.provider, every=job.every)(job.fn)
    runner.run_once()
    left = deadline - time.monotonic()
    if left <= 0:
        return
    timer = threading.Timer(left, runner.stop)
    timer.start()
    try:
        runner.run_forever()
    finally:
        timer.cancel()
