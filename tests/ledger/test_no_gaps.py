"""Guarantee 5: no gaps. A run's window starts where the last good run's
window ended; only success/partial move the watermark, never backwards.

The property test drives random sequences of runs against a simulated source
whose records carry the time they were published (some while a run executes)
and checks that the runs that moved the watermark tiled the timeline and
fetched every record exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtrack import InvalidInput, Ledger, ManualClock, RunCancelled, RunStatus, Window

OUTCOMES = ("success", "partial", "failed", "cancelled")
GOOD = {"success", "partial"}


class Boom(Exception):
    pass


@dataclass
class Source:
    """A provider's records, each stamped with the time it was published."""

    published: list[datetime] = field(default_factory=list)

    def publish(self, at: datetime) -> None:
        self.published.append(at)

    def fetch(self, window: Window) -> set[datetime]:
        """What a run asks for: records published in ``[start, end)``."""
        return {
            t
            for t in self.published
            if (window.start is None or t >= window.start) and t < window.end  # type: ignore[operator]
        }


@dataclass
class Fetched:
    run_id: int
    outcome: str
    window: Window
    records: set[datetime]


@pytest.fixture
def manual(db_url: str) -> Iterator[tuple[Ledger, ManualClock]]:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as opened:
        yield opened, clock


def finish(ledger: Ledger, run: object, outcome: str) -> None:
    """End the open run block the way ``outcome`` says (called inside it)."""
    if outcome == "partial":
        run.item("one", "error", error="HTTP 500")  # type: ignore[attr-defined]
    elif outcome == "failed":
        raise Boom("provider down")
    elif outcome == "cancelled":
        ledger.cancel(run.id, reason="operator")  # type: ignore[attr-defined]
        run.check_cancelled()  # type: ignore[attr-defined]


def run_once(
    ledger: Ledger, job: str, outcome: str, source: Source, clock: ManualClock, during: list[int]
) -> Fetched:
    """One incremental run: fetch its window, meanwhile the source publishes."""
    before = ledger.watermark(job)
    try:
        with ledger.run(job) as run:
            assert run.window == Window(before, clock.now())
            for ms in during:  # published while the run executes, after its window
                clock.advance(timedelta(milliseconds=ms))
                source.publish(clock.now())
            got = source.fetch(run.window)
            clock.advance(timedelta(microseconds=1))
            finish(ledger, run, outcome)
    except Boom:
        pass
    assert ledger.get_run(run.id).status is RunStatus(outcome)
    assert ledger.get_run(run.id).window == run.window
    return Fetched(run.id, outcome, run.window, got)


def backfill(
    ledger: Ledger,
    job: str,
    outcome: str,
    clock: ManualClock,
    back: int,
    length: int,
    advance: bool,
) -> None:
    """Re-fetch an old slice; it leaves the watermark where it is."""
    mark = ledger.watermark(job)
    assert mark is not None
    start = mark - timedelta(seconds=back)
    end = start + timedelta(seconds=min(back, length))
    try:
        with ledger.run(job, window_start=start, window_end=end, advance_watermark=advance) as run:
            assert run.window == Window(start, end)
            clock.advance(timedelta(milliseconds=5))
            finish(ledger, run, outcome)
    except Boom:
        pass
    assert ledger.watermark(job) == mark


run_step = st.tuples(
    st.just("run"),
    st.sampled_from(OUTCOMES),
    st.lists(st.integers(0, 60_000), max_size=3),  # publish delays before (ms)
    st.lists(st.integers(1, 60_000), max_size=3),  # publish delays during (ms)
)
backfill_step = st.tuples(
    st.just("backfill"),
    st.sampled_from(OUTCOMES),
    st.integers(1, 7200),
    st.integers(0, 7200),
    st.booleans(),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(st.one_of(run_step, run_step, backfill_step), min_size=1, max_size=10))
def test_good_runs_tile_the_timeline_and_fetch_every_record(
    manual: tuple[Ledger, ManualClock], steps: list[tuple[object, ...]]
) -> None:
    ledger, clock = manual
    job = f"nogaps:{uuid.uuid4().hex[:10]}"  # a fresh job for every example
    source = Source()
    fetched: list[Fetched] = []
    marks: list[datetime | None] = [None]
    for kind, outcome, *args in steps:
        if kind == "run":
            before, during = args
            for ms in before:  # type: ignore[attr-defined]
                clock.advance(timedelta(milliseconds=ms))
                source.publish(clock.now())
            fetched.append(run_once(ledger, job, outcome, source, clock, during))  # type: ignore[arg-type]
        elif marks[-1] is not None:
            backfill(ledger, job, outcome, clock, *args)  # type: ignore[arg-type]
        marks.append(ledger.watermark(job))
    clock.advance(timedelta(seconds=1))
    fetched.append(run_once(ledger, job, "success", source, clock, [1]))
    marks.append(ledger.watermark(job))

    assert all(a is None or (b is not None and a <= b) for a, b in pairwise(marks))
    moved = [f for f in fetched if f.outcome in GOOD]
    assert moved[0].window.start is None
    for previous, following in pairwise(moved):
        assert following.window.start == previous.window.end  # no gap, no overlap
    final = moved[-1].window.end
    assert ledger.watermark(job) == final
    due = {t for t in source.published if t < final}
    seen = [t for f in moved for t in f.records]
    assert len(seen) == len(set(seen))  # no record fetched twice
    assert set(seen) == due  # every record published before the watermark, once
    assert any(t >= final for t in source.published)  # the last one waits for the next run


def test_failed_and_cancelled_runs_leave_the_watermark(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, clock = manual
    source = Source()
    first = run_once(ledger, "w:job", "success", source, clock, [])
    clock.advance(60)
    failed = run_once(ledger, "w:job", "failed", source, clock, [])
    clock.advance(60)
    cancelled = run_once(ledger, "w:job", "cancelled", source, clock, [])
    clock.advance(60)
    assert ledger.watermark("w:job") == first.window.end
    assert failed.window.start == cancelled.window.start == first.window.end
    nxt = run_once(ledger, "w:job", "partial", source, clock, [])
    assert nxt.window.start == first.window.end  # covers the failed runs' windows too
    assert ledger.watermark("w:job") == nxt.window.end == clock.now() - timedelta(microseconds=1)


def test_first_run_has_an_open_start(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, clock = manual
    assert ledger.watermark("w:new") is None
    with ledger.run("w:new") as run:
        assert run.window == Window(None, clock.now())
    assert ledger.get_run(run.id).window_start is None


def test_explicit_window_end_moves_the_watermark_there(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    cut = clock.now() - timedelta(hours=1)
    with ledger.run("w:end", window_end=cut) as run:
        assert run.window == Window(None, cut)
    assert ledger.watermark("w:end") == cut
    with ledger.run("w:end") as run:
        assert run.window == Window(cut, clock.now())


def test_backfill_leaves_the_watermark_unless_asked(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, clock = manual
    with ledger.run("w:bf"):
        pass
    mark = ledger.watermark("w:bf")
    assert mark is not None
    clock.advance(3600)
    old = (mark - timedelta(days=30), mark - timedelta(days=29))
    with ledger.run("w:bf", window_start=old[0], window_end=old[1]) as run:
        assert run.window == Window(*old)
    assert ledger.watermark("w:bf") == mark
    assert not ledger.get_run(run.id).moves_watermark
    # Asked to advance, an old backfill still cannot move the watermark back.
    with ledger.run("w:bf", window_start=old[0], window_end=old[1], advance_watermark=True):
        pass
    assert ledger.watermark("w:bf") == mark
    # ... and one that reaches past it moves it forward.
    with ledger.run("w:bf", window_start=old[0], advance_watermark=True) as run:
        assert run.window == Window(old[0], clock.now())
    assert ledger.watermark("w:bf") == clock.now()
    # A run that opts out of moving the watermark, with the default window.
    clock.advance(60)
    with ledger.run("w:bf", advance_watermark=False) as run:
        assert run.window.start == clock.now() - timedelta(seconds=60)
    assert ledger.watermark("w:bf") == clock.now() - timedelta(seconds=60)


def test_a_clock_behind_the_watermark_gets_an_empty_window(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    with ledger.run("w:skew"):
        pass
    mark = ledger.watermark("w:skew")
    clock.set(mark - timedelta(seconds=2))  # this worker's clock is behind the last one's
    with ledger.run("w:skew") as run:
        assert run.window == Window(mark, mark)  # empty, never inverted
    assert ledger.watermark("w:skew") == mark


def test_window_bad_input_is_refused_before_anything_is_written(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    now = clock.now()
    with pytest.raises(InvalidInput) as caught:
        ledger.run("w:bad", window_start=now, window_end=now - timedelta(seconds=1))
    assert caught.value.field == "window_start"
    with pytest.raises(InvalidInput) as caught, ledger.run("w:bad", window_end=now + timedelta(1)):
        pass
    assert caught.value.field == "window_end"
    assert "never be fetched" in str(caught.value)
    with pytest.raises(InvalidInput, match="advance_watermark"):
        ledger.run("w:bad", advance_watermark="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="window_end"):
        ledger.run("w:bad", window_end="2030-01-01")  # type: ignore[arg-type]
    assert ledger.jobs() == [] and ledger.list_runs().items == []
    # A backfill may end in the future: it does not move the watermark.
    with ledger.run("w:bad", window_start=now, window_end=now + timedelta(1)):
        pass


def test_window_end_before_the_watermark_is_refused(manual: tuple[Ledger, ManualClock]) -> None:
    ledger, clock = manual
    with ledger.run("w:early"):
        pass
    mark = ledger.watermark("w:early")
    clock.advance(60)
    with (
        pytest.raises(InvalidInput) as caught,
        ledger.run("w:early", window_end=mark - timedelta(seconds=1)),
    ):
        pass
    assert caught.value.field == "window_end"
    assert "watermark" in str(caught.value)
    assert len(ledger.list_runs(job="w:early").items) == 1
    assert ledger.active_runs("w:early") == []  # the refused run holds no lease


def test_cancel_before_start_is_not_a_window_either(
    manual: tuple[Ledger, ManualClock],
) -> None:
    ledger, clock = manual
    with ledger.run("w:pend"):
        pass
    mark = ledger.watermark("w:pend")
    clock.advance(60)
    pending = ledger.create_run("w:pend")
    ledger.cancel(pending.id)
    clock.advance(60)
    with ledger.run("w:pend") as run:
        raise RunCancelled(run.id, "stopping")  # the block ends it cancelled
    assert ledger.get_run(run.id).status is RunStatus.CANCELLED
    assert ledger.watermark("w:pend") == mark
    with ledger.run("w:pend") as run:
        assert run.window.start == mark
