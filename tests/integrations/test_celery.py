"""Celery: a real ``celery worker`` (prefork) on the local Redis broker runs
tracked tasks; the runs, counters, statuses and retry links are read back."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtrack import Ledger, RunRecord, RunStatus

celery = pytest.importorskip("celery")
redis = pytest.importorskip("redis")

HERE = Path(__file__).parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: One Redis database and queue per pytest session: parallel sessions never meet.
SESSION_DB = random.Random(os.getpid()).randint(1, 15)
SESSION_QUEUE = f"runtrack-tests-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def broker() -> str:
    url = f"redis://127.0.0.1:6379/{SESSION_DB}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as exc:
        if IN_CI:
            pytest.fail(f"CI=true requires Redis on 127.0.0.1:6379: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    return url


class Worker:
    """A ``celery worker`` process group running tests/integrations/celery_tasks.py."""

    def __init__(self, broker: str, db_url: str, log: Path) -> None:
        self.name = f"rt{uuid.uuid4().hex[:8]}@localhost"
        self.log = log
        env = dict(
            os.environ,
            RT_CELERY_BROKER=broker,
            RT_CELERY_QUEUE=SESSION_QUEUE,
            RT_CELERY_DB=db_url,
            PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        )
        command = [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker"]
        command += ["-P", "prefork", "-c", "2", "-Q", SESSION_QUEUE, "-n", self.name]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"]
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=HERE,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        until(lambda: "ready." in log.read_text(), 60, f"worker ready\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()[-4000:]

    def kill(self, sig: signal.Signals) -> None:
        os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(timeout=15)


@pytest.fixture
def client(broker: str) -> Iterator[Any]:
    app = celery.Celery("rt_tests_client", broker=broker, backend=broker)
    app.conf.update(task_default_queue=SESSION_QUEUE, broker_connection_retry_on_startup=True)
    yield app
    app.close()


@pytest.fixture
def worker(broker: str, db_url: str, tmp_path: Path) -> Iterator[Worker]:
    started = Worker(broker, db_url, tmp_path / "worker.log")
    yield started
    started.stop()


def until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def runs_of(ledger: Ledger, job: str) -> list[RunRecord]:
    """The job's runs, oldest first."""
    return list(reversed(ledger.list_runs(job=job).items))


def finished(ledger: Ledger, job: str, count: int, worker: Worker) -> list[RunRecord]:
    """Wait until ``job`` has ``count`` terminal runs (postrun ends a run just
    after Celery stores the task's result)."""

    def done() -> bool:
        return (
            sum(
                run.status in {"success", "partial", "failed", "cancelled"}
                for run in runs_of(ledger, job)
            )
            >= count
        )

    until(done, 30, f"{count} finished runs of {job}\n{worker.output()}")
    return runs_of(ledger, job)


def running(ledger: Ledger, job: str, worker: Worker) -> RunRecord:
    until(lambda: ledger.active_runs(job), 30, f"a running {job}\n{worker.output()}")
    return ledger.active_runs(job)[0]


def test_each_task_execution_is_a_run_and_retries_are_linked_attempts(
    ledger: Ledger, worker: Worker, client: Any
) -> None:
    added = client.send_task("add", args=(2, 3))
    fetched = client.send_task("shop.fetch", args=("es",))
    boom = client.send_task("boom")
    flaky = client.send_task("flaky")
    assert added.get(timeout=30) == 5
    assert fetched.get(timeout=30) == "es"
    assert flaky.get(timeout=30) == 3  # current_run().attempt in the third execution
    with pytest.raises(ValueError, match="no such page"):
        boom.get(timeout=30)

    (run,) = finished(ledger, "add", 1, worker)
    assert (run.status, run.counters, run.attempt, run.retry_of) == (
        "success",
        {"added": 5},
        1,
        None,
    )
    assert run.params == {"celery_task_id": added.id}
    assert run.provider == "add" and run.triggered_by == "celery"

    (run,) = finished(ledger, "shop:fetch:es", 1, worker)  # the job callable named it
    assert (run.status, run.provider, run.counters) == ("success", "shop", {"pages": 3})

    (run,) = finished(ledger, "boom", 1, worker)
    assert (run.status, run.error_type, run.error_message) == (
        "failed",
        "ValueError",
        "no such page",
    )

    first, second, third = finished(ledger, "flaky", 3, worker)
    assert [r.status for r in (first, second, third)] == ["failed", "failed", "success"]
    assert [r.attempt for r in (first, second, third)] == [1, 2, 3]
    assert [r.retry_of for r in (first, second, third)] == [None, first.id, second.id]
    assert [r.triggered_by for r in (first, second, third)] == ["celery", "retry", "retry"]
    assert first.error_type == "ConnectionError" and "503" in (first.error_message or "")
    assert all(r.counters == {"tries": 1} for r in (first, second, third))
    assert all(r.params == {"celery_task_id": flaky.id} for r in (first, second, third))


def test_revoke_with_terminate_and_a_cancel_request_end_runs_cancelled(
    ledger: Ledger, worker: Worker, client: Any
) -> None:
    revoked = client.send_task("slow")
    run = running(ledger, "slow", worker)
    client.control.revoke(revoked.id, terminate=True)
    (ended,) = finished(ledger, "slow", 1, worker)
    assert ended.id == run.id and ended.status == "cancelled", ended.error_type
    assert ended.counters["ticks"] >= 1  # flushed by the heartbeats before the kill

    # SIGKILL leaves the child no time: the worker's main process ends the run.
    revoked = client.send_task("slow")
    run = running(ledger, "slow", worker)
    client.control.revoke(revoked.id, terminate=True, signal="SIGKILL")
    _, ended = finished(ledger, "slow", 2, worker)
    assert (ended.id, ended.status, ended.error_type) == (run.id, "cancelled", "revoked")

    client.send_task("slow")
    run = running(ledger, "slow", worker)
    ledger.cancel(run.id, by="operator", reason="enough")
    *_, ended = finished(ledger, "slow", 3, worker)
    assert (ended.id, ended.status, ended.error_type) == (run.id, "cancelled", "cancelled")

    # The worker survived both and still tracks tasks.
    assert client.send_task("add", args=(1, 1)).get(timeout=30) == 2
    (run,) = finished(ledger, "add", 1, worker)
    assert run.status == RunStatus.SUCCESS


def test_a_sigkilled_worker_leaves_runs_that_are_reaped(
    ledger: Ledger, worker: Worker, client: Any
) -> None:
    client.send_task("slow")
    run = running(ledger, "slow", worker)
    worker.kill(signal.SIGKILL)  # the main process and its children
    worker.proc.wait(timeout=15)
    time.sleep(0.5)  # the heartbeats (every 0.1 s) have stopped
    assert ledger.reap(stale_after=0.4) == [run.id]
    (ended,) = runs_of(ledger, "slow")
    assert (ended.status, ended.error_type) == ("failed", "heartbeat_timeout")


def test_eager_tasks_are_runs_too_and_an_eager_retry_is_a_linked_attempt(ledger: Ledger) -> None:
    """``apply()`` and ``task_always_eager`` (tests, scripts) run retries in
    the calling process, with the same task id: both runs are recorded and linked."""
    from runtrack import current_run
    from runtrack.integrations.celery import track

    app = celery.Celery("rt_eager", broker="memory://", set_as_current=False)
    app.conf.task_always_eager = True

    @app.task(name="eager.flaky", bind=True, max_retries=2)
    def flaky(self: Any) -> int:
        current_run().count("tries")
        if self.request.retries < 1:
            raise self.retry(exc=ConnectionError("upstream answered 503"), countdown=0)
        return int(current_run().attempt)

    tracker = track(app, ledger, job="eager:flaky")
    try:
        result = flaky.apply()
    finally:
        tracker.disconnect()
    assert (result.state, result.result) == ("SUCCESS", 2)
    first, second = runs_of(ledger, "eager:flaky")
    assert (first.attempt, first.status, first.error_type) == (1, "failed", "ConnectionError")
    assert (second.attempt, second.retry_of, second.status) == (2, first.id, "success")
