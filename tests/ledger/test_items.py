"""Per-item outcomes: written in batches, tallied, summarized by group, listed."""

from __future__ import annotations

import asyncio
import math
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from runtrack import InvalidInput, ItemStatus, Ledger, RunNotFound, RunStatus

MARKETPLACES = ("amazon", "ebay", "fnac", "mediamarkt", "pccomponentes")


class ItemInserts:
    """Counts the statements that write run_items (an executemany is one; so
    is a COPY, should a backend bulk-load them) and the threads that ran them,
    with a listener on the ledger's engine."""

    def __init__(self, ledger: Ledger) -> None:
        self.engine = ledger.engine
        self.threads: list[str] = []
        event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT INTO RUN_ITEMS", "COPY RUN_ITEMS")):
            self.threads.append(threading.current_thread().name)

    @property
    def count(self) -> int:
        return len(self.threads)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def counting(db_url: str) -> Iterator[tuple[Ledger, ItemInserts]]:
    opened = Ledger(db_url, heartbeat_interval=0.05, item_batch_size=500)
    inserts = ItemInserts(opened)
    yield opened, inserts
    inserts.close()
    opened.close()


def price_lookup(product: int, marketplace: int) -> ItemStatus:
    """A deterministic, uneven price comparison: most products are found
    somewhere, some nowhere, a few lookups fail."""
    if product % 97 == 0 and marketplace == 2:
        return ItemStatus.ERROR
    if product % 10 == 0:
        return ItemStatus.NOT_FOUND  # found on no marketplace
    return ItemStatus.SUCCESS if (product + marketplace) % 3 == 0 else ItemStatus.NOT_FOUND


def test_ten_thousand_items_in_few_inserts_with_right_tallies(
    counting: tuple[Ledger, ItemInserts],
) -> None:
    ledger, inserts = counting
    products = 2000  # x 5 marketplaces = 10,000 items
    expected: Counter[str] = Counter()
    found: set[str] = set()
    with ledger.run("prices:compare", provider="marketplaces") as run:
        for p in range(products):
            for m, marketplace in enumerate(MARKETPLACES):
                status = price_lookup(p, m)
                expected[status.value] += 1
                if status is ItemStatus.SUCCESS:
                    found.add(f"sku-{p}")
                run.item(
                    f"sku-{p}@{marketplace}",
                    status,
                    group=f"sku-{p}",
                    source=marketplace,
                    data={"price": 9.99 + p} if status is ItemStatus.SUCCESS else None,
                    error="HTTP 503" if status is ItemStatus.ERROR else None,
                )
    ledger.close()  # stop the heartbeat thread so its tick count is final
    beats = ledger._heartbeat.ticks
    floor = math.ceil(10_000 / ledger.item_batch_size)  # no statement carries more than a batch
    bound = floor + beats + 1
    print(f"\n{10_000} items: {inserts.count} INSERTs (bound {bound}, {beats} heartbeats)")
    assert floor <= inserts.count <= bound

    record = ledger.get_run(run.id)
    assert sum(expected.values()) == 10_000
    assert record.items == {s.value: expected[s.value] for s in ItemStatus}
    assert record.status is RunStatus.PARTIAL  # some lookups failed
    assert record.groups_found == len(found)
    assert record.groups_missing == products - len(found)
    stored = Counter[str]()
    for status in ItemStatus:
        stored[status.value] = len(_all_items(ledger, run.id, status=status.value))
    assert stored == expected


def _all_items(ledger: Ledger, run_id: int, **filters: Any) -> list[Any]:
    items, cursor = [], None
    while True:
        page = ledger.list_items(run_id, cursor=cursor, limit=1000, **filters)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def test_group_summary_of_a_price_comparison(ledger: Ledger) -> None:
    with ledger.run("prices:small") as run:
        run.item("a@amazon", "success", group="a", source="amazon", data={"price": 10})
        run.item("a@ebay", "not_found", group="a", source="ebay")
        run.item("b@amazon", "not_found", group="b", source="amazon")
        run.item("b@ebay", "not_found", group="b", source="ebay")
        run.item("c@amazon", "error", group="c", source="amazon", error="timeout")
        run.item("c@ebay", "success", group="c", source="ebay", data={"price": 12})
        run.item("d@amazon", "error", group="d", source="amazon", error="timeout")
        run.item("ungrouped", "skipped")
    record = ledger.get_run(run.id)
    assert record.items == {"success": 2, "not_found": 3, "skipped": 1, "error": 2}
    assert (record.groups_found, record.groups_missing) == (2, 2)  # a, c / b, d
    assert record.status is RunStatus.PARTIAL
    summary = {g.group: g for g in ledger.group_summary(run.id)}
    assert sorted(summary) == ["a", "b", "c", "d"]
    assert summary["c"].found_in == ("ebay",)
    assert not summary["d"].found


def test_runs_without_groups_have_no_group_summary(ledger: Ledger) -> None:
    with ledger.run("offers:upsert") as run:
        run.item("offer-1", "success")
        run.item("offer-2", "skipped")
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.SUCCESS  # skipped and not_found are not errors
    assert (record.groups_found, record.groups_missing) == (None, None)


def test_one_error_item_makes_the_run_partial(ledger: Ledger) -> None:
    with ledger.run("offers:one-bad") as run:
        for i in range(20):
            run.item(f"offer-{i}", "success")
        run.item("offer-20", ItemStatus.ERROR, error="no title")
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.PARTIAL
    assert record.items["error"] == 1
    [bad] = ledger.list_items(run.id, status="error").items
    assert (bad.key, bad.error) == ("offer-20", "no title")


def test_list_items_filters_and_pages_without_gaps_or_repeats(ledger: Ledger) -> None:
    with ledger.run("prices:pages") as run:
        for i in range(53):
            status = "success" if i % 2 else "not_found"
            run.item(f"k{i}", status, group=f"g{i % 3}", source="s", data={"i": i})
    everything = _pages(ledger, run.id, limit=10)
    assert [item.key for item in everything] == [f"k{i}" for i in range(53)]  # recorded order
    assert everything[5].data == {"i": 5} and everything[5].run_id == run.id
    found = _pages(ledger, run.id, limit=7, status="success")
    assert [i.key for i in found] == [f"k{i}" for i in range(1, 53, 2)]
    g1 = _pages(ledger, run.id, limit=4, group="g1")
    assert [i.key for i in g1] == [f"k{i}" for i in range(1, 53, 3)]
    both = _pages(ledger, run.id, limit=3, group="g1", status="not_found")
    assert [i.key for i in both] == [f"k{i}" for i in range(1, 53, 3) if i % 2 == 0]
    assert ledger.list_items(run.id, group="nope").items == []


def _pages(ledger: Ledger, run_id: int, *, limit: int, **filters: Any) -> list[Any]:
    items, cursor, pages = [], None, 0
    while True:
        page = ledger.list_items(run_id, cursor=cursor, limit=limit, **filters)
        assert len(page.items) <= limit
        pages += 1
        items += page.items
        if page.next_cursor is None:
            assert pages == max(1, math.ceil(len(items) / limit))
            return items
        cursor = page.next_cursor


def test_items_of_another_run_never_leak_into_a_listing(ledger: Ledger) -> None:
    with ledger.run("a") as first:
        first.item("x", "success")
    with ledger.run("b") as second:
        second.item("y", "success")
    assert [i.key for i in ledger.list_items(first.id).items] == ["x"]
    assert [i.key for i in ledger.list_items(second.id).items] == ["y"]


def test_list_items_of_a_missing_run_or_with_bad_filters(ledger: Ledger) -> None:
    with pytest.raises(RunNotFound):
        ledger.list_items(999_999)
    with ledger.run("jobs:x") as run:
        run.item("k", "success")
    with pytest.raises(InvalidInput, match="status"):
        ledger.list_items(run.id, status="found")
    with pytest.raises(InvalidInput, match="cursor"):
        ledger.list_items(run.id, cursor="not-a-cursor")
    with pytest.raises(InvalidInput, match="limit"):
        ledger.list_items(run.id, limit=0)


def test_items_are_visible_while_the_run_goes_on(ledger: Ledger) -> None:
    with ledger.run("offers:live") as run:
        for i in range(30):
            run.item(f"o{i}", "success")
        ledger.heartbeat_now()
        assert len(ledger.list_items(run.id).items) == 30
        run.item("o30", "success")
    assert len(ledger.list_items(run.id).items) == 31


def test_items_of_a_failed_run_are_kept(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.run("offers:crash") as run:
        run.item("o1", "success")
        run.item("o2", "error", error="bad")
        raise RuntimeError("provider down")
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.FAILED
    assert record.items == {"success": 1, "not_found": 0, "skipped": 0, "error": 1}
    assert [i.key for i in ledger.list_items(run.id).items] == ["o1", "o2"]


BAD_ITEMS: list[tuple[dict[str, Any], str]] = [
    ({"status": "found"}, "item status"),
    ({"data": {"at": object()}}, "item data"),
    ({"data": float("nan")}, "item data"),
    ({"data": {"prices": [1.0, float("inf")]}}, "item data"),
    ({"key": ""}, "item key"),
    ({"key": "k" * 513}, "item key"),
    ({"key": 42}, "item key"),
    ({"group": ""}, "item group"),
    ({"source": 3}, "item source"),
    ({"error": RuntimeError("x")}, "item error"),
]


def test_bad_items_are_refused_and_lose_nothing_buffered(ledger: Ledger) -> None:
    with ledger.run("offers:bad-item") as run:
        run.item("before-1", "success")
        run.item("before-2", "not_found")
        for bad, field in BAD_ITEMS:
            call = {"key": "k", "status": "success", **bad}
            key, status = call.pop("key"), call.pop("status")
            with pytest.raises(InvalidInput) as caught:
                run.item(key, status, **call)
            assert caught.value.field == field, bad
            assert caught.value.allowed
        run.item("after", "success")
    record = ledger.get_run(run.id)
    assert record.status is RunStatus.SUCCESS  # a refused call is not an item error
    assert [i.key for i in ledger.list_items(run.id).items] == ["before-1", "before-2", "after"]
    assert record.items == {"success": 2, "not_found": 1, "skipped": 0, "error": 0}


def test_bad_items_lose_nothing_already_flushed_or_buffered(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=60, item_batch_size=4) as ledger:
        with ledger.run("offers:bad-mid-batch") as run:
            for i in range(6):  # one batch of 4 written, 2 buffered
                run.item(f"k{i}", "success")
            with pytest.raises(InvalidInput, match="item status"):
                run.item("k6", "oops")
            assert len(ledger.list_items(run.id).items) == 4
        assert [i.key for i in ledger.list_items(run.id).items] == [f"k{i}" for i in range(6)]


# -- async: full buffers are flushed off the event loop ----------------------------


def test_async_run_hands_full_buffers_to_the_heartbeat_thread(
    counting: tuple[Ledger, ItemInserts],
) -> None:
    ledger, inserts = counting
    loop_thread = threading.current_thread().name

    async def job() -> int:
        async with ledger.run("prices:async") as run:
            for i in range(5000):
                run.item(f"k{i}", "success")
                if i % 50 == 0:
                    await asyncio.sleep(0.001)  # real jobs await their HTTP calls
            return run.id

    run_id = asyncio.run(job())
    assert "runtrack-heartbeat" in inserts.threads  # written while the run went on
    assert loop_thread not in inserts.threads  # and never by the event loop's thread
    assert len(_all_items(ledger, run_id)) == 5000


def test_async_buffer_is_bounded_when_nobody_flushes_it(db_url: str) -> None:
    ledger = Ledger(db_url, heartbeat_interval=0.05, item_batch_size=10)
    try:
        run = ledger.start_run("prices:burst")
        bound = run.max_buffered

        async def burst() -> int:
            largest = 0
            for i in range(bound * 5):  # never yields: the heartbeat thread may lag
                run.item(f"k{i}", "success")
                largest = max(largest, len(run._items))
            return largest

        assert asyncio.run(burst()) <= bound
        ledger.finish_run(run)
        assert len(_all_items(ledger, run.id)) == bound * 5
    finally:
        ledger.close()
