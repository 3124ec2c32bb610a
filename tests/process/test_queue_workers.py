"""Issue 17 acceptance: queued runs drained by several worker processes,
each running several at once. Every run executes exactly once; a worker
SIGKILLed mid-run leaves its run reaped and the queue drained by the others;
never more running runs of a job than its concurrency, nor of a provider
than its limit (sampled throughout). 200 runs; 1,000 with ``--long``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from runtrack import Ledger, RunStatus
from runtrack.store.schema import runs

HERE = Path(__file__).parent
JOBS = [f"drain:{n:02d}" for n in range(8)]
PROCESSES, CONCURRENCY, P0_LIMIT = 4, 4, 3


class Sampler(threading.Thread):
    """Counts running runs per job and per provider, over and over."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(daemon=True)
        self.ledger = ledger
        self.stop = threading.Event()
        self.max_job = 0
        self.max_p0 = 0
        self.samples = 0

    def run(self) -> None:
        query = (
            sa.select(runs.c.job_key, runs.c.provider, sa.func.count())
            .where(runs.c.status == RunStatus.RUNNING)
            .group_by(runs.c.job_key, runs.c.provider)
        )
        while not self.stop.is_set():
            with self.ledger.engine.connect() as conn:
                rows = conn.execute(query).all()
            self.max_job = max([self.max_job, *(n for _, _, n in rows)])
            p0 = sum(n for _, provider, n in rows if provider == "p0")
            self.max_p0 = max(self.max_p0, p0)
            self.samples += 1
            time.sleep(0.02)


def start_worker(url: str, log: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUNTRACK_DATABASE_URL": url, "QUEUE_LOG": str(log), "QUEUE_WORKER": name}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "runtrack", "worker", "queue_worker:runner"]
    with (log.parent / f"{name}.out").open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [*command, "--concurrency", str(CONCURRENCY)], env=env, stdout=out, stderr=out, cwd=HERE
        )


def test_workers_drain_the_queue_exactly_once_within_limits(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    total = 1000 if request.config.getoption("--long") else 200
    with Ledger(db_url) as ledger:
        for key in JOBS:
            ledger.ensure_job(key, provider=f"p{JOBS.index(key) % 2}")
        ledger.limit_provider("p0", max_running=P0_LIMIT)
        victim = ledger.trigger("drain:07", params={"sleep": 60})  # will die with its worker
        queued = [
            ledger.trigger(JOBS[n % len(JOBS)], params={"n": n, "sleep": 0.005}).id
            for n in range(total)
        ]
        sampler = Sampler(ledger)
        sampler.start()
        workers = [start_worker(db_url, tmp_path / f"w{i}.log", f"w{i}") for i in range(PROCESSES)]
        try:
            holder = wait_for(lambda: executing(tmp_path, victim.id), 60, tmp_path)
            killed = workers[int(holder[1:])]
            killed.send_signal(signal.SIGKILL)
            killed.wait(10)
            wait_for(
                lambda: ledger.count_runs(status=["pending", "running"]) == 0 or None,
                180,
                tmp_path,
            )
        finally:
            sampler.stop.set()
            sampler.join(5)
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(30)
        executed = Counter(
            int(line)
            for log in tmp_path.glob("w*.log")
            for line in log.read_text().splitlines()
            if line
        )
        records = [ledger.get_run(i) for i in [victim.id, *queued]]
        # What the killed worker was running (the victim, and the short runs
        # in its other slots) was reaped; everything else succeeded.
        reaped = [r for r in records if r.status is not RunStatus.SUCCESS]
        assert victim.id in {r.id for r in reaped}
        assert len(reaped) <= CONCURRENCY
        for run in reaped:
            assert (run.status, run.error_type) == (RunStatus.FAILED, "heartbeat_timeout")
            assert run.worker_id == holder
            assert executed[run.id] <= 1  # killed after its claim: at most once
        done = [r.id for r in records if r.status is RunStatus.SUCCESS]
        assert len(done) >= total + 1 - CONCURRENCY
        assert all(executed[i] == 1 for i in done), {i: executed[i] for i in done}
        assert sampler.samples > 10
        assert sampler.max_job <= 2, sampler.max_job
        assert sampler.max_p0 <= P0_LIMIT, sampler.max_p0


def executing(logs: Path, run_id: int) -> str | None:
    """The worker whose log shows it executing ``run_id``."""
    for log in logs.glob("w*.log"):
        if str(run_id) in log.read_text().split():
            return log.stem
    return None


def wait_for(check: object, seconds: float, logs: Path) -> object:
    assert callable(check)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    outputs = "\n".join(p.read_text()[-3000:] for p in logs.glob("*.out"))
    raise AssertionError(f"timed out after {seconds} s:\n{outputs}")
