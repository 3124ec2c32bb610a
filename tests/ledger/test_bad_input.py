"""Bad input raises a clear runtrack error before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from runtrack import InvalidInput, Ledger, RunStatus


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"job": ""}, "job"),
        ({"job": "   "}, "job"),
        ({"job": 42}, "job"),
        ({"job": "x" * 256}, "job"),
        ({"job": "a\nb"}, "job"),
        ({"job": "ok", "params": {"when": object()}}, "params"),
        ({"job": "ok", "params": [1, 2]}, "params"),
        ({"job": "ok", "concurrency": 0}, "concurrency"),
        ({"job": "ok", "triggered_by": ""}, "triggered_by"),
        (
            {
                "job": "ok",
                "window_start": datetime(2026, 2, 1, tzinfo=UTC),
                "window_end": datetime(2026, 1, 1, tzinfo=UTC),
            },
            "window_start",
        ),
    ],
)
def test_bad_run_arguments_write_nothing(ledger: Ledger, kwargs: dict, field: str) -> None:
    kwargs = dict(kwargs)
    job = kwargs.pop("job")
    with pytest.raises(InvalidInput) as caught:
        ledger.run(job, **kwargs)
    assert caught.value.field == field
    assert "allowed" in str(caught.value) or caught.value.allowed is None
    assert ledger.list_runs().items == []
    assert ledger.jobs() == []


def test_bad_handle_calls_keep_the_run(ledger: Ledger) -> None:
    with ledger.run("jobs:keep") as run:
        run.count("good", 2)
        with pytest.raises(InvalidInput, match="counter increment"):
            run.count("bad", "3")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            run.count("bad", True)
        with pytest.raises(InvalidInput):
            run.count("", 1)
        with pytest.raises(InvalidInput, match="total"):
            run.set_total(-1)
        with pytest.raises(InvalidInput):
            run.set_counter("nan", float("nan"))
        with pytest.raises(InvalidInput, match="checkpoint"):
            run.save_checkpoint({"at": datetime(2026, 1, 1, tzinfo=UTC)})
        run.count("good")
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.SUCCESS
    assert record.counters == {"good": 3}


def test_unknown_status_is_refused(ledger: Ledger) -> None:
    run = ledger.start_run("jobs:status")
    with pytest.raises(InvalidInput, match="status"):
        ledger.finish_run(run, "done")
    with pytest.raises(InvalidInput, match="status"):
        ledger.finish_run(run, "running")
    with pytest.raises(InvalidInput, match="status"):
        ledger.list_runs(status="exploded")
    assert ledger.get_run(run.id).status is RunStatus.RUNNING
    ledger.finish_run(run, "success")


def test_bad_cursor_and_limit(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        ledger.list_runs(cursor="'; DROP TABLE runs; --")
    with pytest.raises(InvalidInput, match="limit"):
        ledger.list_runs(limit=0)
    with pytest.raises(InvalidInput, match="limit"):
        ledger.list_runs(limit=10**9)


class BrokenDict(dict):  # type: ignore[type-arg]
    def items(self):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("items")


def test_a_mapping_whose_items_raise_is_bad_input(ledger: Ledger) -> None:
    """Issue 15 (F4): the raw ZeroDivisionError of a dict subclass got out of
    run.item, run.error and save_checkpoint instead of InvalidInput."""
    with ledger.run("bad:broken-dict") as run:
        with pytest.raises(InvalidInput, match=r"item data.*ZeroDivisionError"):
            run.item("a", "success", data=BrokenDict(a=1))
        with pytest.raises(InvalidInput, match="error details"):
            run.error("x", ctx=BrokenDict(a=1))
        with pytest.raises(InvalidInput, match="checkpoint"):
            run.save_checkpoint(BrokenDict(a=1))
        run.count("kept")
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.SUCCESS and record.counters == {"kept": 1}


@pytest.mark.parametrize(
    ("call", "field", "known"),
    [
        (lambda ledger: ledger.run("shop:sync", lables={"a": "b"}), "lables", "labels"),
        (lambda ledger: ledger.create_run("shop:sync", retries=2), "retries", "retry_of"),
        (lambda ledger: ledger.trigger("shop:sync", lables={}), "lables", "labels"),
        (lambda ledger: ledger.list_runs(limt=5), "limt", "limit"),
        (lambda ledger: ledger.count_runs(state="failed"), "state", "status"),
        (lambda ledger: ledger.pause("shop", fr="15m"), "fr", "for_"),
        (lambda ledger: ledger.rerun(), "arguments", "run_id"),
    ],
)
def test_a_misspelt_or_missing_argument_is_bad_input_naming_the_known_ones(
    ledger: Ledger, call: Any, field: str, known: str
) -> None:
    with ledger.run("shop:sync", provider="shop"):
        pass
    before = ledger.count_runs()
    with pytest.raises(InvalidInput) as caught:
        call(ledger)
    assert caught.value.field == field
    assert known in (caught.value.allowed or "").split(", ")
    assert ledger.count_runs() == before


def test_a_type_error_raised_inside_a_method_is_not_called_bad_input(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug inside the ledger must surface as itself, not as the caller's fault.
    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug inside")

    monkeypatch.setattr(ledger._queries, "list_runs", broken)
    with pytest.raises(TypeError, match="a bug inside"):
        ledger.list_runs(limit=5)
