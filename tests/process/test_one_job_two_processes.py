"""Guarantee 4 with real processes: two workers start the same job 200 times
each while an observer in a third process checks, all along, that the job
never has two active runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from runtrack import Ledger, RunStatus
from runtrack.store.schema import runs

STARTS = 200


def test_two_processes_never_run_one_job_twice(
    db_url: str, spawn: Callable[..., Any], reaper: Ledger
) -> None:
    job = "proc:contended"
    active = (
        sa.select(sa.func.count(), sa.func.count(runs.c.heartbeat_at))
        .select_from(runs)
        .where(runs.c.job_key == job, runs.c.status.in_(["pending", "running"]))
    )
    workers = [spawn("contend", db_url, job, str(STARTS)) for _ in range(2)]
    observations = overlaps = seen_active = 0
    with reaper.engine.connect() as conn:
        while any(w.proc.poll() is None for w in workers):
            count, with_heartbeat = conn.execute(active).one()
            conn.rollback()  # a fresh snapshot for every observation
            observations += 1
            overlaps += count > 1
            seen_active += count
            assert with_heartbeat == count  # a running run always has a heartbeat
            time.sleep(0.002)
    assert overlaps == 0
    for worker in workers:
        assert worker.wait() == 0, worker.stderr()
    summaries = [json.loads(w.expect("summary")) for w in workers]
    started = sum(s["started"] for s in summaries)
    assert all(s["started"] + s["busy"] == STARTS for s in summaries)
    assert reaper.count_runs(job=job) == started
    assert reaper.count_runs(job=job, status=RunStatus.SUCCESS) == started
    assert all(s["started"] > 0 for s in summaries)  # both made progress
    assert observations >= 50 and seen_active > 0
