"""Run labels (issue 16): given at the start, kept with the run, filtered on.

``ledger.run(job, labels={...})`` and every other way a run is created
(``start_run``, ``create_run``, ``trigger``; ``rerun`` and queued retries copy
them) write the labels in the run's insert transaction; ``list_runs`` and
``count_runs`` filter on them (all given labels must match); retention
deletes them with their run. Bad labels are refused before anything is written.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from runtrack import InvalidInput, Ledger, ManualClock, RunStatus
from runtrack.store.schema import run_labels, runs

GROWTH = {"team": "growth"}


def _label_rows(ledger: Ledger) -> list[tuple[int, str, str]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(run_labels).order_by(run_labels.c.run_id, run_labels.c.key))
        return [tuple(row) for row in rows]  # type: ignore[misc]


def _run_count(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one())


def test_labels_are_written_with_the_run_and_read_back(ledger: Ledger) -> None:
    labels = {"team": "growth", "k8s.io/app-name": "crawler_2", "note": "ünïcode — ✓ a=b:c"}
    with ledger.run("lab:job", labels=labels) as run:
        pass
    with ledger.run("lab:job") as plain:
        pass
    assert ledger.get_run(run.id).labels == labels
    assert ledger.get_run(plain.id).labels == {}
    listed = {r.id: r.labels for r in ledger.list_runs().items}
    assert listed == {run.id: labels, plain.id: {}}
    # A started run's labels are there while it runs (active runs read them too).
    started = ledger.start_run("lab:other", labels=GROWTH)
    assert [r.labels for r in ledger.active_runs("lab:other")] == [GROWTH]
    ledger.finish_run(started)


def test_the_caller_changing_its_dict_afterwards_changes_nothing(ledger: Ledger) -> None:
    labels = {"team": "growth"}
    context = ledger.run("lab:copy", labels=labels)
    labels["team"] = "changed"
    labels["extra"] = "x"
    with context as run:
        pass
    assert ledger.get_run(run.id).labels == {"team": "growth"}


def test_filters_match_every_given_label(ledger: Ledger) -> None:
    def started(job: str, **labels: str) -> int:
        with ledger.run(job, labels=labels or None) as run:
            pass
        return run.id

    a = started("lab:f", team="growth", tier="gold")
    b = started("lab:f", team="growth")
    c = started("lab:f", team="core", tier="gold")
    d = started("lab:g", team="growth", tier="gold")
    started("lab:f")

    def ids(**filters: Any) -> list[int]:
        return [r.id for r in ledger.list_runs(**filters).items]

    assert ids(labels={"team": "growth"}) == [d, b, a]
    assert ids(labels={"team": "growth", "tier": "gold"}) == [d, a]
    assert ids(labels={"tier": "gold", "team": "growth"}) == [d, a]
    assert ids(labels={"team": "growth"}, job="lab:f") == [b, a]
    assert ids(labels={"team": "nobody"}) == []
    assert ids(labels={"team": "Growth"}) == []  # exact, on every database
    assert ledger.count_runs(labels={"team": "growth"}) == 3
    assert ledger.count_runs(labels={"team": "growth", "tier": "gold"}, job="lab:f") == 1
    assert ledger.count_runs(labels={"tier": "gold"}) == 3
    assert [r.id for r in ledger.list_runs_by_page(1, labels={"tier": "gold"}).items] == [d, c, a]
    # Pages of a filtered listing follow the cursor.
    first = ledger.list_runs(labels={"team": "growth"}, limit=2)
    assert [r.id for r in first.items] == [d, b] and first.next_cursor
    rest = ledger.list_runs(labels={"team": "growth"}, limit=2, cursor=first.next_cursor)
    assert [r.id for r in rest.items] == [a] and rest.next_cursor is None
    # A time range takes the other form of the listing query.
    since = ledger.get_run(a).created_at - timedelta(seconds=1)
    assert ids(labels={"team": "growth"}, since=since) == [d, b, a]


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (["team", "growth"], "got list"),
        ("team=growth", "got str"),
        ({"": "x"}, "labels name"),
        ({"-team": "x"}, "starting with a letter or digit"),
        ({"team=x": "y"}, "labels name"),
        ({"team:x": "y"}, "labels name"),
        ({"a" * 64: "y"}, "1-63"),
        ({"té": "y"}, "labels name"),
        ({1: "y"}, "got int"),
        ({"team": ""}, "is empty"),
        ({"team": "x" * 201}, "201 characters"),
        ({"team": "a\nb"}, "control character"),
        ({"team": 5}, "got int"),
        ({"team": None}, "got NoneType"),
        ({f"k{i}": "v" for i in range(21)}, "at most 20"),
    ],
)
def test_bad_labels_are_refused_before_anything_is_written(
    ledger: Ledger, labels: Any, problem: str
) -> None:
    with ledger.run("lab:before"):
        pass
    runs_before = _run_count(ledger)
    starts = [
        lambda: ledger.run("lab:bad", labels=labels),
        lambda: ledger.start_run("lab:bad", labels=labels),
        lambda: ledger.create_run("lab:bad", labels=labels),
        lambda: ledger.trigger("lab:before", labels=labels),
        lambda: ledger.list_runs(labels=labels),
        lambda: ledger.count_runs(labels=labels),
    ]
    for start in starts:
        with pytest.raises(InvalidInput, match="labels") as refused:
            start()
        assert problem in str(refused.value)
        assert "allowed" in str(refused.value)
    assert _run_count(ledger) == runs_before
    assert _label_rows(ledger) == []
    assert ledger.get_job("lab:bad") is None


def test_twenty_labels_of_the_longest_kind_are_fine(ledger: Ledger) -> None:
    labels = {f"{i:02d}" + "k" * 61: "v" * 200 for i in range(20)}
    with ledger.run("lab:big", labels=labels) as run:
        pass
    assert ledger.get_run(run.id).labels == labels
    assert ledger.list_runs(labels={"00" + "k" * 61: "v" * 200}).items[0].id == run.id


def test_queued_runs_keep_their_labels_and_reruns_copy_them(ledger: Ledger) -> None:
    ledger.ensure_job("lab:q")
    triggered = ledger.trigger("lab:q", labels=GROWTH)
    assert triggered.labels == GROWTH
    # The same trigger again is the same pending run; other labels make another.
    assert ledger.trigger("lab:q", labels=GROWTH).id == triggered.id
    other = ledger.trigger("lab:q", labels={"team": "core"})
    assert other.id != triggered.id and other.labels == {"team": "core"}
    assert ledger.trigger("lab:q").id not in (triggered.id, other.id)
    claimed = ledger.claim({"lab:q": 1})
    assert claimed is not None and claimed.id == triggered.id
    ledger.finish_run(claimed, RunStatus.SUCCESS)
    assert ledger.get_run(triggered.id).labels == GROWTH
    rerun = ledger.rerun(triggered.id)
    assert rerun.rerun_of == triggered.id and rerun.labels == GROWTH
    created = ledger.create_run("lab:q", labels={"tier": "gold"})
    assert created.labels == {"tier": "gold"}
    started = ledger.start_run(run_id=created.id)
    ledger.finish_run(started, RunStatus.FAILED, error="boom")
    retry = ledger.retry_queued(created.id)
    assert retry is not None and retry.labels == {"tier": "gold"}
    assert {r.id for r in ledger.list_runs(labels={"tier": "gold"}).items} == {
        created.id,
        retry.id,
    }


def test_a_direct_start_under_a_provider_limit_keeps_its_labels(ledger: Ledger) -> None:
    ledger.limit_provider("limited", 2)
    with ledger.run("lab:limited", provider="limited", labels=GROWTH) as run:
        pass
    assert ledger.get_run(run.id).labels == GROWTH


def test_retention_deletes_labels_with_their_run(db_url: str) -> None:
    clock = ManualClock()
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as ledger:
        with ledger.run("lab:old", labels={"team": "growth", "tier": "gold"}) as old:
            pass
        clock.advance(60)
        with ledger.run("lab:old", labels=GROWTH) as kept:
            pass
        clock.advance(timedelta(days=100))
        assert ledger.prune("90d").runs == 1
        assert [row[0] for row in _label_rows(ledger)] == [kept.id]
        assert [r.id for r in ledger.list_runs(labels=GROWTH).items] == [kept.id]
        assert old.id != kept.id


def test_a_start_without_labels_sends_no_statement_more(ledger: Ledger) -> None:
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa.event.listen(ledger.engine, "before_cursor_execute", seen)
    try:
        with ledger.run("lab:plain"):
            pass
        plain = [s for s in sent]
        sent.clear()
        with ledger.run("lab:plain", labels=GROWTH):
            pass
    finally:
        sa.event.remove(ledger.engine, "before_cursor_execute", seen)
    assert not any("run_labels" in statement for statement in plain)
    # The labelled start: the same run, and one statement for its labels.
    assert sum("run_labels" in statement for statement in sent) == 1
