"""Keys are compared exactly, on every database: names that differ only by
case, accent or trailing space are different jobs, providers, items, groups,
sources and users (MariaDB's default collation, utf8mb4_general_ci, folds all
three), and the database refusing a write never reaches the caller as a raw
driver error."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from runtrack import Ledger, RecordConflict, RunStatus
from runtrack.store.schema import jobs

#: Each differs from the others only by case, accent, trailing space or a
#: letter that a case-insensitive collation expands or folds (sharp s, dotless i).
KEYS = [
    "x:Python-Madrid",
    "x:python-madrid",
    "x:café",
    "x:cafe",
    "x:cafe ",
    "x:CAFE",
    "x:straße",
    "x:strasse",
    "x:\u0131",  # dotless i
    "x:i",
]


def test_keys_alike_but_for_case_accent_or_space_are_distinct_jobs(ledger: Ledger) -> None:
    with ExitStack() as stack:  # all active at once: their leases must not collide
        active = [stack.enter_context(ledger.run(key, provider=key)) for key in KEYS]
        for run in active:
            run.count("n")
    assert [ledger.get_run(run.id).job for run in active] == KEYS
    assert sorted(job.key for job in ledger.jobs()) == sorted(KEYS)
    for run in active:
        job = ledger.get_job(run.job)
        assert job is not None and job.key == run.job and job.provider == run.job
        assert job.last_run_id == run.id and job.last_status is RunStatus.SUCCESS
        assert [r.id for r in ledger.list_runs(job=run.job).items] == [run.id]
        assert [r.id for r in ledger.list_runs(provider=run.job).items] == [run.id]
        assert [j.key for j in ledger.jobs(provider=run.job)] == [run.job]
    tallies = {(t.job, t.status): t.runs for t in ledger.job_tallies()}
    assert tallies == {(key, RunStatus.SUCCESS): 1 for key in KEYS}


def test_a_second_run_of_a_job_alike_but_for_case_starts(ledger: Ledger) -> None:
    with ledger.run("x:Python-Madrid"):
        pass
    with ledger.run("x:python-madrid") as run:  # a new job, not a clash
        pass
    assert ledger.get_run(run.id).job == "x:python-madrid"
    assert ledger.get_job("x:Python-Madrid").last_run_id == run.id - 1  # type: ignore[union-attr]


def test_providers_alike_but_for_case_have_their_own_pauses(ledger: Ledger) -> None:
    ledger.pause("Amazon", for_=60, reason="429 on the EU site")
    ledger.pause("amazon ", for_=120, reason="trailing space: another provider")
    assert ledger.paused("amazon") is None
    assert ledger.paused("AMAZON") is None
    assert ledger.paused("Amazon").reason == "429 on the EU site"  # type: ignore[union-attr]
    assert ledger.paused("amazon ").reason == "trailing space: another provider"  # type: ignore[union-attr]
    assert sorted(p.provider for p in ledger.pauses()) == ["Amazon", "amazon "]


def test_items_groups_and_sources_alike_but_for_case_are_distinct(ledger: Ledger) -> None:
    with ledger.run("x:items") as run:
        run.item("SKU-1", "success", group="SKU-a", source="Amazon")
        run.item("sku-1", "not_found", group="sku-A", source="amazon")
        run.item("sku-1 ", "success", group="SKU-a ", source="amazon ")
        run.item("skú-1", "error", group="skú-a", source="amazón", error="boom")
    items = ledger.list_items(run.id).items
    assert [item.key for item in items] == ["SKU-1", "sku-1", "sku-1 ", "skú-1"]
    assert [i.key for i in ledger.list_items(run.id, group="SKU-a").items] == ["SKU-1"]
    assert [i.key for i in ledger.list_items(run.id, group="sku-A").items] == ["sku-1"]
    assert [i.key for i in ledger.list_items(run.id, group="SKU-a ").items] == ["sku-1 "]
    summary = {g.group: (g.counts, g.found_in) for g in ledger.group_summary(run.id)}
    assert summary == {
        "SKU-a": ({"success": 1}, ("Amazon",)),
        "sku-A": ({"not_found": 1}, ()),
        "SKU-a ": ({"success": 1}, ("amazon ",)),
        "skú-a": ({"error": 1}, ()),
    }
    record = ledger.get_run(run.id)
    assert (record.groups_found, record.groups_missing) == (2, 2)


def test_users_alike_but_for_case_are_distinct(ledger: Ledger) -> None:
    with ledger.run("x:by-ana", triggered_by="Ana") as first:
        pass
    with ledger.run("x:by-ana", triggered_by="ana") as second:
        pass
    assert [r.id for r in ledger.list_runs(triggered_by="Ana").items] == [first.id]
    assert [r.id for r in ledger.list_runs(triggered_by="ana").items] == [second.id]


def test_a_write_the_database_refuses_is_a_domain_error(ledger: Ledger) -> None:
    with ledger.run("x:dup"):
        pass
    duplicate = sa.insert(jobs).values(
        key="x:dup", created_at=ledger.now().replace(tzinfo=None), consecutive_failures=0
    )
    with pytest.raises(RecordConflict) as refused:
        ledger.store.tx.write(lambda conn: conn.execute(duplicate))
    assert "x:dup" in str(refused.value) or "jobs" in str(refused.value)  # the database's words
    assert not isinstance(refused.value, sa.exc.DBAPIError)
    assert isinstance(refused.value.__cause__, sa.exc.IntegrityError)  # kept for debugging
