"""Checkpoints: a run saves a JSON cursor at once; the job's checkpoint moves
only when a run ends success or partial; a run after a failure can resume
from the failed run's last checkpoint."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtrack import InvalidInput, LeaseLost, Ledger, ManualClock, RunStatus


class Boom(Exception):
    pass


def fail_after(ledger: Ledger, job: str, *checkpoints: Any, **options: Any) -> int:
    """A run that saves ``checkpoints`` and then fails; returns its id."""
    with pytest.raises(Boom), ledger.run(job, **options) as run:
        for value in checkpoints:
            run.save_checkpoint(value)
        raise Boom("page 3 timed out")
    return run.id


def test_saved_checkpoint_is_stored_at_once(ledger: Ledger) -> None:
    with ledger.run("cp:now") as run:
        run.save_checkpoint({"page": 1})
        run.save_checkpoint({"page": 2, "cursor": "abc"})
        assert ledger.get_run(run.id).checkpoint == {"page": 2, "cursor": "abc"}
        assert ledger.get_job("cp:now").checkpoint is None  # not until the run ends well
        assert run.checkpoint == {"page": 2, "cursor": "abc"}
    assert ledger.get_job("cp:now").checkpoint == {"page": 2, "cursor": "abc"}


@pytest.mark.parametrize("outcome", ["success", "partial"])
def test_good_runs_advance_the_job_checkpoint(ledger: Ledger, outcome: str) -> None:
    with ledger.run("cp:good") as first:
        assert first.previous_checkpoint is None and first.resume_checkpoint is None
        first.save_checkpoint({"since_id": 100})
        if outcome == "partial":
            first.error("one offer had no title")
    assert ledger.get_run(first.id).status is RunStatus(outcome)
    with ledger.run("cp:good") as second:
        assert second.previous_checkpoint == {"since_id": 100}
        assert second.resume_checkpoint is None  # the last run did not fail


@pytest.mark.parametrize("how", ["failed", "cancelled"])
def test_failed_runs_leave_the_job_checkpoint_and_offer_a_resume(ledger: Ledger, how: str) -> None:
    with ledger.run("cp:bad") as good:
        good.save_checkpoint({"since_id": 100})
    if how == "failed":
        bad_id = fail_after(ledger, "cp:bad", {"since_id": 100, "page": 3})
    else:
        with ledger.run("cp:bad") as bad:
            bad.save_checkpoint({"since_id": 100, "page": 3})
            ledger.cancel(bad.id, reason="operator")
            bad.check_cancelled()
        bad_id = bad.id
    assert ledger.get_run(bad_id).status is RunStatus(how)
    assert ledger.get_job("cp:bad").checkpoint == {"since_id": 100}
    with ledger.run("cp:bad") as retry:
        assert retry.previous_checkpoint == {"since_id": 100}
        assert retry.resume_checkpoint == {"since_id": 100, "page": 3}
        retry.save_checkpoint({"since_id": 180})
    assert ledger.get_job("cp:bad").checkpoint == {"since_id": 180}
    with ledger.run("cp:bad") as after:
        assert after.resume_checkpoint is None


def test_resume_survives_a_second_failure_before_any_save(ledger: Ledger) -> None:
    fail_after(ledger, "cp:chain", {"page": 7})
    with pytest.raises(Boom), ledger.run("cp:chain") as second:
        assert second.resume_checkpoint == {"page": 7}
        raise Boom("failed again before saving anything")
    assert ledger.get_run(second.id).checkpoint == {"page": 7}  # where it started
    with ledger.run("cp:chain") as third:
        assert third.resume_checkpoint == {"page": 7}
        third.save_checkpoint({"page": 9})
    assert ledger.get_job("cp:chain").checkpoint == {"page": 9}


def test_a_good_run_that_saves_nothing_keeps_the_job_checkpoint(ledger: Ledger) -> None:
    with ledger.run("cp:keep") as run:
        run.save_checkpoint([1, 2, 3])
    with ledger.run("cp:keep"):
        pass
    assert ledger.get_job("cp:keep").checkpoint == [1, 2, 3]


def test_retry_of_names_the_run_to_resume(ledger: Ledger) -> None:
    failed = fail_after(ledger, "cp:retry", {"offset": 40})
    with ledger.run("cp:retry"):
        pass  # a good run in between: no implicit resume any more
    with ledger.run("cp:retry", retry_of=failed, attempt=2) as retry:
        assert retry.resume_checkpoint == {"offset": 40}
        assert retry.attempt == 2
    assert ledger.get_run(retry.id).retry_of == failed


def test_a_failed_backfill_does_not_hand_its_cursor_to_a_regular_run(ledger: Ledger) -> None:
    with ledger.run("cp:bf"):
        pass
    mark = ledger.watermark("cp:bf")
    assert mark is not None
    start = mark - timedelta(days=7)
    fail_after(ledger, "cp:bf", {"backfill_page": 5}, window_start=start, window_end=mark)
    with ledger.run("cp:bf") as regular:
        assert regular.resume_checkpoint is None
    fail_after(ledger, "cp:bf", {"backfill_page": 8}, window_start=start, window_end=mark)
    with ledger.run("cp:bf", window_start=start, window_end=mark) as again:
        assert again.resume_checkpoint == {"backfill_page": 8}


def test_a_pending_run_started_later_resumes_too(ledger: Ledger) -> None:
    fail_after(ledger, "cp:pending", {"page": 2})
    pending = ledger.create_run("cp:pending")
    run = ledger.start_run(run_id=pending.id)
    assert run.resume_checkpoint == {"page": 2}
    ledger.finish_run(run)


NOT_JSON: list[Any] = [
    {"at": datetime(2026, 1, 1, tzinfo=UTC)},
    {1, 2},
    math.nan,
    {"nested": [math.inf]},
    object(),
]


def test_non_json_checkpoints_are_refused_and_keep_the_last_one(ledger: Ledger) -> None:
    with ledger.run("cp:json") as run:
        run.save_checkpoint({"page": 1})
        for value in NOT_JSON:
            with pytest.raises(InvalidInput) as caught:
                run.save_checkpoint(value)
            assert caught.value.field == "checkpoint"
            assert "JSON" in str(caught.value)
        assert run.checkpoint == {"page": 1}
        assert ledger.get_run(run.id).checkpoint == {"page": 1}
    assert ledger.get_run(run.id).status is RunStatus.SUCCESS
    assert ledger.get_job("cp:json").checkpoint == {"page": 1}


def test_any_json_value_round_trips(ledger: Ledger) -> None:
    values = ["opaque-cursor", 12345, 0.5, [1, "two", None], {"ñ": {"deep": [True, False]}}]
    for value in values:
        with ledger.run("cp:types") as run:
            run.save_checkpoint(value)
        with ledger.run("cp:types") as nxt:
            assert nxt.previous_checkpoint == value


def test_a_reaped_run_cannot_save_a_checkpoint(db_url: str) -> None:
    clock = ManualClock()
    with Ledger(db_url, clock=clock, heartbeat_interval=60, stale_after=120) as ledger:
        with pytest.raises(LeaseLost), ledger.run("cp:reaped") as run:
            run.save_checkpoint({"page": 1})
            clock.advance(600)
            assert ledger.reap() == [run.id]
            run.save_checkpoint({"page": 2})
        record = ledger.get_run(run.id)
        assert record.status is RunStatus.FAILED and record.checkpoint == {"page": 1}
        assert ledger.get_job("cp:reaped").checkpoint is None
        with ledger.run("cp:reaped") as nxt:
            assert nxt.resume_checkpoint == {"page": 1}


def test_a_cancel_stops_a_checkpoint_save(ledger: Ledger) -> None:
    with ledger.run("cp:cancel") as run:
        run.save_checkpoint({"page": 1})
        ledger.cancel(run.id)
        run.save_checkpoint({"page": 2})  # raises RunCancelled; the block ends the run
        raise AssertionError("not reached")
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.CANCELLED and record.checkpoint == {"page": 1}
    assert ledger.get_job("cp:cancel").checkpoint is None
