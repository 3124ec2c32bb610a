"""A job's status strip (its last 30 finished runs) is kept on the job's row
by every finalization, whoever ends the run, and outlives retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from runtrack import Ledger, ManualClock, RunStatus


class Boom(Exception):
    pass


@pytest.fixture
def manual(db_url: str) -> Iterator[tuple[Ledger, ManualClock]]:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    with Ledger(db_url, clock=clock, stale_after=60, heartbeat_interval=59) as opened:
        yield opened, clock


def finish(ledger: Ledger, clock: ManualClock, job: str, outcome: str, took: float) -> int:
    """One run of ``job`` that lasts ``took`` seconds and ends ``outcome``."""
    try:
        with ledger.run(job) as run:
            clock.advance(took)
            if outcome == "partial":
                run.error("one page failed")
            elif outcome == "failed":
                raise Boom
    except Boom:
        pass
    clock.advance(60)
    return run.id


def test_the_strip_holds_the_last_30_finished_runs_newest_first(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    outcomes = ["success", "partial", "failed"] * 12  # 36 runs
    ids = [finish(ledger, clock, "strip:a", o, took=1.5 + i) for i, o in enumerate(outcomes)]
    finish(ledger, clock, "strip:b", "failed", took=2)

    strips = ledger.recent_outcomes()
    strip = strips["strip:a"]
    assert [o.id for o in strip] == ids[::-1][:30]
    assert [o.status.value for o in strip] == outcomes[::-1][:30]
    newest = ledger.get_run(ids[-1])
    assert strip[0].finished_at == newest.finished_at
    assert strip[0].duration == newest.duration == timedelta(seconds=1.5 + 35)
    assert [o.status for o in strips["strip:b"]] == [RunStatus.FAILED]
    assert ledger.recent_outcomes(["strip:b"]).keys() == {"strip:b"}


def test_reaped_and_cancelled_runs_enter_the_strip(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, clock = manual
    silent = ledger.start_run("strip:c")
    clock.advance(120)
    assert ledger.reap() == [silent.id]
    queued = ledger.create_run("strip:c")
    ledger.cancel(queued.id)
    strip = ledger.recent_outcomes(["strip:c"])["strip:c"]
    assert [(o.id, o.status) for o in strip] == [
        (queued.id, RunStatus.CANCELLED),
        (silent.id, RunStatus.FAILED),
    ]
    assert strip[0].duration is None  # it never started
    assert strip[1].duration == timedelta(seconds=120)


def test_the_strip_outlives_retention(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, clock = manual
    ids = [finish(ledger, clock, "strip:d", "success", took=1) for _ in range(5)]
    clock.advance(timedelta(days=100))
    assert ledger.prune("30d").runs == 4  # the latest run is kept
    assert [o.id for o in ledger.recent_outcomes(["strip:d"])["strip:d"]] == ids[::-1]
