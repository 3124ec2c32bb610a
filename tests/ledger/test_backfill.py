"""Issue 17: a backfill queues one run per fixed window of [start, end); the
windows tile the range exactly, never move the watermark, go behind manual
triggers, respect max_parallel at claim time; resume queues exactly the
failed, cancelled, expired and missing windows; cancel cancels the queued
ones; bad input is refused before anything is written."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from runtrack import InvalidInput, JobNotFound, Ledger, ManualClock, RunStatus
from runtrack.backfills import BackfillState, WindowState
from runtrack.errors import BackfillBusy, BackfillNotFound
from runtrack.store.schema import backfills, runs

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def ledger_(db_url: str, clock: ManualClock) -> Iterator[Ledger]:
    with Ledger(db_url, clock=clock, heartbeat_interval=60) as ledger:
        with ledger.run("bf:a", provider="acme"):  # a live run: the watermark is T0
            pass
        yield ledger


def _drain(ledger: Ledger, fail: set[datetime] = frozenset(), jobs: int = 1) -> list[int]:  # type: ignore[assignment]
    ran = []
    while (run := ledger.claim({"bf:a": jobs})) is not None:
        ran.append(run.id)
        if run.window.start in fail:
            ledger.finish_run(run, RunStatus.FAILED, error="boom")
        else:
            ledger.finish_run(run)
    return ran


def test_windows_tile_the_range_exactly_and_never_move_the_watermark(ledger_: Ledger) -> None:
    watermark = ledger_.get_job("bf:a").watermark
    end = START + 60 * DAY - timedelta(hours=5)  # the last window is clipped
    record = ledger_.backfill("bf:a", START, end, every="1d", by="user:ana")
    assert record.windows == 60 and record.progress.queued == 60
    assert record.state is BackfillState.RUNNING and record.triggered_by == "user:ana"
    windows = ledger_.backfill_windows(record.id)
    assert windows[0].start == START and windows[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert windows[-1].end - windows[-1].start == timedelta(hours=19)
    assert len(_drain(ledger_)) == 60
    done = ledger_.get_backfill(record.id)
    assert done.progress.done == 60 and done.state is BackfillState.DONE
    assert ledger_.get_job("bf:a").watermark == watermark
    first = ledger_.get_run(windows[0].run_id or 0)
    assert (first.window_start, first.window_end) == (START, START + DAY)


def test_manual_triggers_go_before_backfill_windows(ledger_: Ledger) -> None:
    ledger_.backfill("bf:a", START, START + 3 * DAY)
    manual = ledger_.trigger("bf:a", params={"now": True})
    run = ledger_.claim({"bf:a": 1})
    assert run is not None and run.id == manual.id


def test_max_parallel_caps_running_windows_at_claim_time(ledger_: Ledger) -> None:
    record = ledger_.backfill("bf:a", START, START + 5 * DAY, max_parallel=2)
    first, second = ledger_.claim({"bf:a": 4}), ledger_.claim({"bf:a": 4})
    assert first is not None and second is not None
    assert ledger_.claim({"bf:a": 4}) is None  # the job has slots; the backfill has not
    progress = ledger_.get_backfill(record.id).progress
    assert (progress.running, progress.queued) == (2, 3)
    ledger_.finish_run(first)
    third = ledger_.claim({"bf:a": 4})
    assert third is not None and third.window.start == START + 2 * DAY


def test_resume_queues_exactly_the_failed_cancelled_and_missing_windows(
    ledger_: Ledger, clock: ManualClock
) -> None:
    record = ledger_.backfill("bf:a", START, START + 6 * DAY)
    windows = ledger_.backfill_windows(record.id)
    ids = {w.start: w.run_id for w in windows}
    ledger_.cancel(ids[START + 5 * DAY] or 0)  # cancelled
    with ledger_.engine.begin() as conn:  # a window whose run was pruned
        conn.execute(sa.delete(runs).where(runs.c.id == ids[START + 4 * DAY]))
    _drain(ledger_, fail={START + DAY})
    progress = ledger_.get_backfill(record.id).progress
    assert (progress.done, progress.failed, progress.missing) == (3, 2, 1)
    assert ledger_.get_backfill(record.id).state is BackfillState.FAILED
    resumed = ledger_.resume_backfill(record.id)
    assert resumed.progress.queued == 3 and resumed.progress.done == 3
    again = {w.start: w for w in ledger_.backfill_windows(record.id)}
    assert {s for s, w in again.items() if w.state is WindowState.QUEUED} == {
        START + DAY,
        START + 4 * DAY,
        START + 5 * DAY,
    }
    assert again[START + DAY].runs == 2 and again[START].runs == 1
    assert ledger_.resume_backfill(record.id).progress.queued == 3  # nothing twice
    assert len(_drain(ledger_)) == 3
    assert ledger_.get_backfill(record.id).state is BackfillState.DONE


def test_cancel_cancels_the_queued_windows_only(ledger_: Ledger) -> None:
    record = ledger_.backfill("bf:a", START, START + 4 * DAY)
    running = ledger_.claim({"bf:a": 1})
    assert running is not None
    cancelled = ledger_.cancel_backfill(record.id, by="user:ana")
    assert cancelled.state is BackfillState.CANCELLED
    assert (cancelled.progress.running, cancelled.progress.failed) == (1, 3)
    assert ledger_.claim({"bf:a": 4}) is None
    ledger_.finish_run(running)
    resumed = ledger_.resume_backfill(record.id)
    assert resumed.state is BackfillState.RUNNING and resumed.progress.queued == 3


def test_bad_backfills_are_refused_before_anything_is_written(ledger_: Ledger) -> None:
    def count() -> tuple[int, int]:
        with ledger_.engine.connect() as conn:
            return (
                conn.execute(sa.select(sa.func.count()).select_from(backfills)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one(),
            )

    before = count()
    with pytest.raises(JobNotFound):
        ledger_.backfill("bf:nope", START, START + DAY)
    with pytest.raises(InvalidInput, match="end"):
        ledger_.backfill("bf:a", START, START)
    with pytest.raises(InvalidInput, match="every"):
        ledger_.backfill("bf:a", START, START + DAY, every="soon")
    with pytest.raises(InvalidInput, match="every"):
        ledger_.backfill("bf:a", START, START + DAY, every="0.5s")
    with pytest.raises(InvalidInput, match="10,000"):
        ledger_.backfill("bf:a", START, START + 10_001 * timedelta(minutes=1), every="1m")
    with pytest.raises(InvalidInput, match="max_parallel"):
        ledger_.backfill("bf:a", START, START + DAY, max_parallel=0)
    with pytest.raises(BackfillNotFound):
        ledger_.resume_backfill(999)
    assert count() == before
    exactly = ledger_.backfill("bf:a", START, START + 10_000 * timedelta(minutes=1), every="1m")
    assert exactly.windows == 10_000 and exactly.progress.queued == 10_000


def test_backfills_list_newest_first(ledger_: Ledger) -> None:
    first = ledger_.backfill("bf:a", START, START + DAY)
    second = ledger_.backfill("bf:a", START + DAY, START + 3 * DAY, every="12h")
    listed = ledger_.backfills(job="bf:a")
    assert [b.id for b in listed] == [second.id, first.id]
    assert listed[0].windows == 4 and listed[0].every == timedelta(hours=12)


def test_a_rerun_of_a_window_stays_in_its_backfill(ledger_: Ledger) -> None:
    watermark = ledger_.get_job("bf:a").watermark
    record = ledger_.backfill("bf:a", START, START + 2 * DAY)
    _drain(ledger_, fail={START})
    failed = ledger_.backfill_windows(record.id)[0]
    again = ledger_.rerun(failed.run_id or 0, by="user:ana")
    assert again.rerun_of == failed.run_id and again.backfill_id == record.id
    assert ledger_.get_backfill(record.id).progress.queued == 1
    assert ledger_.resume_backfill(record.id).progress.queued == 1  # not queued twice
    _drain(ledger_)
    assert ledger_.get_backfill(record.id).state is BackfillState.DONE
    assert ledger_.get_job("bf:a").watermark == watermark


def test_a_capped_backfill_does_not_hide_the_windows_behind_it(ledger_: Ledger) -> None:
    ledger_.ensure_job("bf:b", provider="acme")
    big = ledger_.backfill("bf:a", START, START + 40 * DAY, max_parallel=1)
    small = ledger_.backfill("bf:b", START, START + 2 * DAY)
    first = ledger_.claim({"bf:a": 5, "bf:b": 5})
    second = ledger_.claim({"bf:a": 5, "bf:b": 5})  # big's 39 queued windows come first
    assert first is not None and second is not None
    assert ledger_.get_run(first.id).backfill_id == big.id
    assert ledger_.get_run(second.id).backfill_id == small.id


def test_start_run_of_a_window_respects_max_parallel(ledger_: Ledger) -> None:
    """``start_run(run_id=...)`` of a backfill's window claims it within the
    backfill's max_parallel, as the queue's claim does."""
    record = ledger_.backfill("bf:a", START, START + 3 * DAY, max_parallel=1)
    ids = [w.run_id or 0 for w in ledger_.backfill_windows(record.id)]
    first = ledger_.start_run(run_id=ids[0], concurrency=4)
    with pytest.raises(BackfillBusy) as busy:
        ledger_.start_run(run_id=ids[1], concurrency=4)
    assert busy.value.backfill_id == record.id
    assert ledger_.get_run(ids[1]).status is RunStatus.PENDING
    assert ledger_.claim({"bf:a": 4}) is None  # nor through the queue
    ledger_.finish_run(first)
    second = ledger_.start_run(run_id=ids[1], concurrency=4)
    assert second.window.start == START + DAY
    assert ledger_.get_backfill(record.id).progress.running == 1
