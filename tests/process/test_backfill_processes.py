"""Issue 17 acceptance: a backfill of 60 daily windows worked by a runner
process that also ticks the job live. The windows tile the range with no gap
or overlap, the job's watermark only follows its live ticks (which keep
running meanwhile); after a SIGKILL of the worker mid-backfill, ``resume``
queues exactly the failed windows (the reaped one included) and leaves the
queued ones alone, and a new worker finishes the backfill. ``max_parallel=1``
keeps the backfill to one of the job's two slots: the other is the live one."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from runtrack import Ledger, RunStatus
from runtrack.backfills import BackfillState, WindowState
from runtrack.store.schema import runs

HERE = Path(__file__).parent
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS, FAILING, HANGING = 60, (10, 20), 30
T = TypeVar("T")


def start_worker(url: str, tmp: Path, name: str, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RUNTRACK_DATABASE_URL": url,
        "BACKFILL_LOG": str(tmp / "windows.log"),
        "BACKFILL_WORKER": name,
        **extra,
    }
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "runtrack", "worker", "backfill_worker:runner"]
    command += ["--concurrency", "2"]
    with (tmp / f"{name}.out").open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=env, stdout=out, stderr=out, cwd=HERE)


def wait_for(check: Callable[[], T | None], seconds: float, tmp: Path) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    outputs = "\n".join(p.read_text()[-3000:] for p in tmp.glob("*.out"))
    raise AssertionError(f"timed out after {seconds} s:\n{outputs}")


def executed_days(tmp: Path) -> list[int]:
    log = tmp / "windows.log"
    return [int(line.split()[1]) for line in log.read_text().splitlines()] if log.exists() else []


def live_ticks(ledger: Ledger, after: datetime, before: datetime) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(runs)
        .where(
            runs.c.job_key == "bf:feed",
            runs.c.backfill_id.is_(None),
            runs.c.status == RunStatus.SUCCESS,
            runs.c.started_at > after.replace(tzinfo=None),
            runs.c.started_at < before.replace(tzinfo=None),
        )
    )
    with ledger.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_a_backfill_survives_a_killed_worker_and_resumes_exactly(
    db_url: str, tmp_path: Path
) -> None:
    with Ledger(db_url) as ledger:
        ledger.ensure_job("bf:feed", provider="feed")
        fail = ",".join(str(d) for d in FAILING)
        first = start_worker(db_url, tmp_path, "w1", BACKFILL_FAIL=fail, BACKFILL_HANG="30")
        try:
            # The job ticks live before the backfill: it has a watermark.
            wait_for(lambda: ledger.get_job("bf:feed").watermark, 30, tmp_path)
            began = ledger.now()
            end = START + DAYS * timedelta(days=1)
            backfill = ledger.backfill("bf:feed", START, end, max_parallel=1)
            assert backfill.windows == DAYS
            wait_for(lambda: HANGING in executed_days(tmp_path), 60, tmp_path)
            time.sleep(2.5)  # live ticks go on beside the hung window
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed_at = ledger.now()
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
        assert live_ticks(ledger, began, killed_at) >= 2  # ticks ran beside the windows

        time.sleep(2.5)  # past the worker's stale_after (2 s)
        ledger.reap(stale_after=2.0)
        windows = {(w.start - START).days: w for w in ledger.backfill_windows(backfill.id)}
        hung = ledger.get_run(windows[HANGING].run_id or 0)
        assert (hung.status, hung.error_type) == (RunStatus.FAILED, "heartbeat_timeout")
        before = ledger.get_backfill(backfill.id).progress
        assert before.failed == len(FAILING) + 1 and before.running == 0
        assert before.done == HANGING - len(FAILING)
        assert before.queued == DAYS - HANGING - 1

        resumed = ledger.resume_backfill(backfill.id, by="user:ops")
        again = {(w.start - START).days: w for w in ledger.backfill_windows(backfill.id)}
        requeued = {d for d, w in again.items() if w.runs == 2}
        assert requeued == {*FAILING, HANGING}  # exactly the failed ones, reaped included
        assert all(again[d].state is WindowState.QUEUED for d in requeued)
        assert resumed.progress.queued == DAYS - HANGING - 1 + len(requeued)
        assert resumed.progress.done == before.done

        second = start_worker(db_url, tmp_path, "w2")
        try:
            wait_for(
                lambda: ledger.get_backfill(backfill.id).state is BackfillState.DONE, 120, tmp_path
            )
            finished_at = ledger.now()
            time.sleep(1.5)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        done = ledger.backfill_windows(backfill.id)
        assert [w.state for w in done] == [WindowState.DONE] * DAYS
        # The windows tile [START, START + 60 d): each starts where the last ended.
        records = [ledger.get_run(w.run_id or 0) for w in done]
        assert records[0].window_start == START
        assert records[-1].window_end == START + DAYS * timedelta(days=1)
        for a, b in itertools.pairwise(records):
            assert a.window_end == b.window_start and a.window_end - a.window_start == timedelta(
                days=1
            )
        # Each day ran once, except the re-queued ones (twice) and none else.
        counted = {d: executed_days(tmp_path).count(d) for d in range(DAYS)}
        assert {d for d, n in counted.items() if n == 2} == {*FAILING, HANGING}
        assert all(n in (1, 2) for n in counted.values())
        # The watermark follows the live ticks only: the last live success's end.
        job = ledger.get_job("bf:feed")
        live = ledger.list_runs(job="bf:feed", status=["success"], limit=200).items
        last_live = max(
            (r for r in live if r.window_end and r.window_end > START.replace(month=6)),
            key=lambda r: r.id,
        )
        assert job.watermark == last_live.window_end
        assert job.watermark is not None and job.watermark >= finished_at - timedelta(seconds=30)
        assert live_ticks(ledger, began, finished_at) >= 3
