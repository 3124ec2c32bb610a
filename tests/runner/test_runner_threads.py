"""A runner keeps its threads: each slot runs run after run in the same job
thread, every run finalized once, and a job stuck past its stop keeps its
thread alone, without holding up the other slots or the next runs."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from runner_loop import running, wait_until_done

from runtrack import Ledger, Run, RunStatus, current_run
from runtrack.runner import Runner

YEARLY = "0 0 1 1 *"  # registered, but never due within a test


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets jobs that ignored their stop request end, before the ledger closes."""
    event = threading.Event()
    yield event
    event.set()
    for thread in threading.enumerate():
        if thread.name.startswith("runtrack-job:"):
            thread.join(timeout=5)


def test_slots_reuse_their_job_threads_and_finalize_each_run_once(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=0.2) as ledger:
        runner = Runner(ledger, concurrency=2, poll_interval=0.1, check_every=None)
        ran: list[tuple[int, int]] = []  # (run id, job thread)

        @runner.job("threads:many", provider="acme", cron=YEARLY, concurrency=2)
        def job(run: Run) -> None:
            assert current_run() is run
            ran.append((run.id, threading.get_ident()))
            run.count("pages")

        runner.run_once()  # registers the job
        queued = [ledger.trigger("threads:many", params={"n": n}).id for n in range(30)]
        with running(runner):
            wait_until_done(ledger, queued)
        records = [ledger.get_run(i) for i in queued]
        assert all(r.status is RunStatus.SUCCESS and r.counters == {"pages": 1} for r in records)
        assert Counter(i for i, _ in ran) == Counter(queued)  # each run ran once
        assert len({thread for _, thread in ran}) <= 2  # one job thread per slot


def test_a_job_stuck_past_its_stop_holds_up_neither_the_other_slot_nor_the_next_runs(
    db_url: str, release: threading.Event
) -> None:
    with Ledger(db_url, heartbeat_interval=0.2) as ledger:
        runner = Runner(ledger, concurrency=2, poll_interval=0.1, grace=0, check_every=None)
        stuck: list[threading.Thread] = []
        quick: list[threading.Thread] = []

        @runner.job("threads:stuck", provider="acme", cron=YEARLY, timeout=0.3)
        def hang(run: Run) -> None:
            stuck.append(threading.current_thread())
            release.wait(30)  # ignores its run handle, so its stop request

        @runner.job("threads:quick", provider="acme", cron=YEARLY, concurrency=2)
        def job(run: Run) -> None:
            quick.append(threading.current_thread())

        runner.run_once()
        hung = ledger.trigger("threads:stuck").id
        with running(runner):
            deadline = time.monotonic() + 20
            while not stuck:
                assert time.monotonic() < deadline, "the stuck job never started"
                time.sleep(0.02)
            first = [ledger.trigger("threads:quick", params={"n": n}).id for n in range(5)]
            wait_until_done(ledger, first)  # the other slot, while one job hangs
            assert ledger.get_run(hung).status is RunStatus.RUNNING
            wait_until_done(ledger, [hung])  # cut off after its timeout and the stop wait
            after = [ledger.trigger("threads:quick", params={"n": n}).id for n in range(5, 15)]
            wait_until_done(ledger, after)
            assert stuck[0].is_alive()  # abandoned, still stuck in its job
        record = ledger.get_run(hung)
        assert record.status is RunStatus.FAILED and record.error_type == "timeout"
        assert all(ledger.get_run(i).status is RunStatus.SUCCESS for i in first + after)
        assert stuck[0] not in quick  # no run went to the thread a job is stuck in
        release.set()
        stuck[0].join(5)
        assert not stuck[0].is_alive()  # given up: it ended once its job returned
