"""The Celery app that the tests' real worker runs (``celery -A celery_tasks
worker``): its broker, queue and ledger come from the environment."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from runtrack import Ledger, current_run
from runtrack.integrations.celery import track

BROKER = os.environ["RT_CELERY_BROKER"]
app = Celery("rt_tests", broker=BROKER, backend=BROKER)
app.conf.update(
    task_default_queue=os.environ["RT_CELERY_QUEUE"],
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
)
ledger = Ledger(os.environ["RT_CELERY_DB"], heartbeat_interval=0.1)


def job_key(task: Any, request: Any) -> str | None:
    """``shop.fetch`` runs are one job per region; other tasks use their name."""
    return f"shop:fetch:{request.args[0]}" if task.name == "shop.fetch" else None


track(app, ledger, job=job_key, provider=lambda task, request: task.name.partition(".")[0])


@app.task(name="add")
def add(x: int, y: int) -> int:
    current_run().count("added", x + y)
    return x + y


@app.task(name="shop.fetch")
def fetch(region: str) -> str:
    current_run().count("pages", 3)
    return region


@app.task(name="boom")
def boom() -> None:
    raise ValueError("no such page")


@app.task(name="flaky", bind=True, max_retries=3)
def flaky(self: Any) -> int:
    run = current_run()
    run.count("tries")
    if self.request.retries < 2:
        raise self.retry(exc=ConnectionError("upstream answered 503"), countdown=0)
    return run.attempt


@app.task(name="slow")
def slow() -> None:
    run = current_run()
    for _ in range(6000):
        run.count("ticks")  # a cancel request raises RunCancelled here
        time.sleep(0.05)
