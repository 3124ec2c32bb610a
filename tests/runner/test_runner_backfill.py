"""Issue 17: a runner works a backfill's windows like any queued run (the
window is ``run.window``), after manual triggers; a window that fails is
retried in that window, as a window of its backfill (never as a live run,
which would fetch the live window and move the watermark); one that fails
for good stays failed until ``resume_backfill`` queues it again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runtrack import Fatal, Ledger, ManualClock, Run, RunStatus, Transient
from runtrack.backfills import BackfillState
from runtrack.runner import Runner
from runtrack.runner.retry import RetryPolicy

START = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize("error", [Transient("503 on the last day"), Fatal("bad day")])
def test_a_failed_window_is_retried_or_resumed_and_never_runs_live(
    manual_ledger: Ledger, clock: ManualClock, error: Exception
) -> None:
    seen: list[tuple[datetime | None, datetime | None]] = []
    runner = Runner(
        manual_ledger,
        retry=RetryPolicy(max_attempts=3, initial=1.0, jitter=0.0),
        reap_every=None,
        prune_every=None,
        check_every=None,
    )

    @runner.job("bf:runner", provider="acme", cron="0 0 1 1 *")
    def job(run: Run) -> None:
        seen.append((run.window.start, run.window.end))
        if run.window.start == START + 2 * DAY and len(seen) < 4:
            raise error

    runner.run_once()  # schedules the job (first tick next year)
    watermark = manual_ledger.get_job("bf:runner").watermark
    backfill = manual_ledger.backfill("bf:runner", START, START + 3 * DAY)
    runner.run_once()
    clock.advance(timedelta(seconds=5))  # past any retry delay
    runner.run_once()
    windows = [(START + n * DAY, START + (n + 1) * DAY) for n in range(3)]
    record = manual_ledger.get_backfill(backfill.id)
    if isinstance(error, Transient):  # retried in its window
        assert seen == [*windows, windows[2]]
        assert record.state is BackfillState.DONE
    else:  # failed for good: it waits for a resume
        assert seen == windows
        assert (record.progress.done, record.progress.failed) == (2, 1)
        assert record.state is BackfillState.FAILED
        assert manual_ledger.count_runs(job="bf:runner") == 3
        manual_ledger.resume_backfill(backfill.id)
        runner.run_once()
        assert seen[-1] == windows[2]
        assert manual_ledger.get_backfill(backfill.id).state is BackfillState.DONE
    assert manual_ledger.count_runs(job="bf:runner") == 4
    assert manual_ledger.get_job("bf:runner").watermark == watermark
    runs = manual_ledger.list_runs(job="bf:runner").items
    assert all(r.backfill_id == backfill.id for r in runs)
    failed = [r for r in runs if r.status is RunStatus.FAILED]
    assert len(failed) == 1 and (failed[0].window_start, failed[0].window_end) == windows[2]
