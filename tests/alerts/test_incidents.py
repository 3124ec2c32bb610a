"""Expectations and incidents (issue 18): stored expectations, incidents
opened and resolved once however many processes check."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from runtrack import Expect, InvalidInput, Ledger, ManualClock, Run, Runner, Volume
from runtrack.alerts import IncidentKind

S = timedelta(seconds=1)


def test_a_job_that_never_succeeds_within_its_expectation_opens_one_incident(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    manual_ledger.expect("shop:offers", success_within="2s")
    assert manual_ledger.check().opened == []  # not late yet
    clock.advance(3 * S)
    first = manual_ledger.check()
    assert [(i.kind, i.job) for i in first.opened] == [(IncidentKind.LATE, "shop:offers")]
    assert "never succeeded" in first.opened[0].summary
    assert manual_ledger.check().opened == []  # once
    assert manual_ledger.job_health("shop:offers").state.value == "late"

    with manual_ledger.run("shop:offers"):
        pass
    resolved = manual_ledger.check().resolved
    assert [i.id for i in resolved] == [first.opened[0].id]
    assert manual_ledger.check().resolved == []
    (incident,) = manual_ledger.incidents("shop:offers")
    assert incident.resolved_at is not None and not incident.is_open
    assert manual_ledger.incidents(open_only=True) == []


def test_lateness_is_judged_to_the_microsecond_among_many_jobs(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    """The database narrows the jobs down with its own time arithmetic (a
    second's slack); the few it returns are judged exactly: at the deadline a
    job is not late, a microsecond after it is."""
    for n in range(50):
        manual_ledger.expect(f"shop:{n:02d}", success_within=3600)
    manual_ledger.expect("shop:edge", success_within="2s")
    clock.advance(2 * S)
    assert manual_ledger.check().opened == []
    clock.advance(timedelta(microseconds=1))
    opened = manual_ledger.check().opened
    assert [(i.kind, i.job) for i in opened] == [(IncidentKind.LATE, "shop:edge")]
    clock.advance(3600 * S)
    late = manual_ledger.check()
    assert len(late.opened) == 50 and len(late.open) == 51
    steady = manual_ledger.check()  # still late: nothing opens or resolves again
    assert (steady.opened, steady.resolved, len(steady.open)) == ([], [], 51)
    manual_ledger.expect("shop:edge", success_within="1d")  # a looser promise holds
    loosened = manual_ledger.check()
    assert [i.job for i in loosened.resolved] == ["shop:edge"] and len(loosened.open) == 50


def _check_together(ledgers: list[Ledger], phase: str) -> list[int]:
    """Every ledger checks at once; how many transitions each one made."""
    counts: list[int] = []
    barrier = threading.Barrier(len(ledgers))

    def check(ledger: Ledger) -> None:
        barrier.wait()
        result = ledger.check()
        counts.append(len(result.opened if phase == "open" else result.resolved))

    threads = [threading.Thread(target=check, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def test_concurrent_checkers_open_and_resolve_each_incident_once(db_url: str) -> None:
    clock = ManualClock()
    ledgers = [Ledger(db_url, clock=clock) for _ in range(4)]
    try:
        for n in range(10):
            ledgers[0].expect(f"shop:{n}", success_within=1)
        clock.advance(2 * S)
        assert sum(_check_together(ledgers, "open")) == 10
        for n in range(10):
            with ledgers[0].run(f"shop:{n}"):
                pass
        assert sum(_check_together(ledgers, "resolve")) == 10
        assert len(ledgers[0].incidents()) == 10
        assert ledgers[0].incidents(open_only=True) == []
    finally:
        for ledger in ledgers:
            ledger.close()


def test_the_runner_checks_in_its_maintenance(manual_ledger: Ledger, clock: ManualClock) -> None:
    manual_ledger.expect("shop:quiet", success_within="2s")
    runner = Runner(manual_ledger, check_every="30s")
    runner.job("board:ok", provider="board", every="1h")(lambda run: None)
    runner.run_once()
    clock.advance(3 * S)
    runner.run_once()  # the check is not due yet: it ran in the first cycle
    assert manual_ledger.incidents() == []
    clock.advance(30 * S)
    runner.run_once()
    assert [i.job for i in manual_ledger.incidents(open_only=True)] == ["shop:quiet"]


def test_failing_opens_after_max_failures_ticks_and_resolves_on_success(
    manual_ledger: Ledger,
) -> None:
    manual_ledger.expect("shop:api", max_failures=2)
    for n in range(2):
        with pytest.raises(ValueError, match="boom"), manual_ledger.run("shop:api"):
            raise ValueError("boom")
        opened = manual_ledger.check().opened
        assert [i.kind for i in opened] == ([] if n == 0 else [IncidentKind.FAILING])
    (incident,) = manual_ledger.incidents(open_only=True)
    assert incident.run_id is not None
    assert manual_ledger.job_health("shop:api").state.value == "failing"
    with manual_ledger.run("shop:api"):
        pass
    assert [i.id for i in manual_ledger.check().resolved] == [incident.id]


def test_bad_expectations_are_refused_before_anything_is_written(manual_ledger: Ledger) -> None:
    bad: list[dict[str, object]] = [
        {"success_within": "soon"},
        {"max_failures": 0},
        {"volume": {"offers": 0.2}},
        {"required": "offers"},
    ]
    for options in bad:
        with pytest.raises(InvalidInput):
            manual_ledger.expect("shop:bad", **options)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="min_ratio"):
        Volume(min_ratio=-1)
    assert manual_ledger.expectations() == {}
    assert manual_ledger.get_job("shop:bad") is None


def test_runner_jobs_are_late_after_three_intervals_unless_they_say_otherwise(
    manual_ledger: Ledger, clock: ManualClock
) -> None:
    manual_ledger.expect("board:kept", success_within="5h")  # an operator's choice
    runner = Runner(manual_ledger)
    for key in ("board:plain", "board:kept"):
        runner.job(key, provider="board", every="1h")(lambda run: None)

    @runner.job("board:strict", provider="board", every="1h", expect=Expect(max_failures=1))
    def strict(run: Run) -> None:
        pass

    runner.run_once()
    stored = manual_ledger.expectations()
    assert stored["board:plain"].success_within == timedelta(hours=3)
    assert stored["board:plain"].origin == "default"
    assert stored["board:kept"].success_within == timedelta(hours=5)
    assert (stored["board:strict"].max_failures, stored["board:strict"].success_within) == (1, None)
    assert manual_ledger.expectations("library:job") == {}


def test_items_given_up_open_an_incident_until_forgotten(manual_ledger: Ledger) -> None:
    for _ in range(2):  # the item fails in two runs: given up after max_carry_attempts=2
        with manual_ledger.run("shop:items", max_carry_attempts=2) as run:
            run.item("sku-1", "error", error="HTTP 500")
    (entry,) = manual_ledger.carried("shop:items").items
    assert entry.state.value == "given_up"
    (opened,) = manual_ledger.check().opened  # no expectation needed
    assert opened.kind is IncidentKind.GIVEN_UP and "1 carried" in opened.summary
    assert manual_ledger.check().opened == []
    manual_ledger.forget_carried("shop:items", entry.id)
    assert [i.id for i in manual_ledger.check().resolved] == [opened.id]
