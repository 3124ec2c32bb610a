"""What ``runtrack exec`` adds to a command: ``runtrack exec JOB -- true``
against ``true`` alone, each a fresh process (interpreter startup, imports,
opening the ledger, one run started and finalized), alternating."""

from __future__ import annotations

import compileall
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import runtrack
from bench.results import Measure, Target
from bench.timing import alternate, summarize, timed

__all__ = ["measure_exec"]

JOB = "bench:exec"
LIMIT_MS = 150.0


def _command(
    argv: list[str], cpu: list[float], env: dict[str, str] | None = None
) -> Callable[[], None]:
    """Run the command; append the CPU time (user + system) it used to ``cpu``:
    on a loaded machine wall time mostly measures the wait for a core."""

    def run_once() -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

    return run_once


def measure_exec(backend: str, url: str, reps: int, batch: int) -> Measure:
    """Wall time of ``runtrack exec JOB -- true`` and of ``true``, ms per command."""
    script = Path(sys.executable).with_name("runtrack")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "runtrack"]
    env = {**os.environ, "RUNTRACK_DATABASE_URL": url}
    # An installed wheel has its bytecode compiled; a source tree run with
    # PYTHONDONTWRITEBYTECODE may not, and would compile runtrack every time.
    compileall.compile_dir(str(Path(runtrack.__file__).parent), quiet=1)
    cpu: dict[str, list[float]] = {"runtrack": [], "floor": []}
    ours = _command([*launcher, "exec", JOB, "--", "true"], cpu["runtrack"], env)
    floor = _command(["true"], cpu["floor"])
    ours()  # the first open migrates the database: not what a cron line pays
    cpu["runtrack"].clear()
    found = alternate(
        [("runtrack", lambda: timed(ours, batch)), ("floor", lambda: timed(floor, batch))], reps
    )
    mine = summarize([t * 1000 for t in found["runtrack"].times])
    base = summarize([t * 1000 for t in found["floor"].times])
    added = mine.median - base.median
    cpu_ms = {side: statistics.median(times) * 1000 for side, times in cpu.items()}
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    return Measure(
        key=f"exec_true.{backend}",
        title=f"`runtrack exec true` vs `true`, {name}",
        unit="ms/command",
        stats=mine,
        floor=base,
        floor_label="`true` alone",
        ratio=mine.median / base.median,
        cpu=(cpu_ms["runtrack"], cpu_ms["floor"]),
        notes=f"adds {added:.0f} ms (startup included); CPU {cpu_ms['runtrack']:.0f} ms",
        target=Target(
            f"<= {LIMIT_MS:g} ms added", ((f"adds <= {LIMIT_MS:g} ms", added <= LIMIT_MS),)
        ),
        extra={
            "added_ms": added,
            "cpu_ms_median": cpu_ms,
            "commands_per_side": len(found["runtrack"].times),
        },
    )
