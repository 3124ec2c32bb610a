"""Load: several processes record runs with counters and items at once on
one database. Nothing is lost (runs, counter updates, items, tallies), and no
lock or deadlock error reaches the code inside the runs."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from reliability_support import Figures, Sizes, Worker, all_runs, item_counts

from runtrack import Ledger

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("timed")]

JOBS = 3  # shared by every process: leases, job rows and tallies are contended


def test_processes_recording_at_once_lose_nothing(
    db_url: str, backend: str, sizes: Sizes, figures: Figures, spawn: Callable[..., Worker]
) -> None:
    workers = [spawn("load", db_url, n, sizes.load_runs, JOBS) for n in range(sizes.load_processes)]
    for worker in workers:
        worker.expect("ready")
    began = time.monotonic() + 0.1
    for worker in workers:
        worker.send(began)
    reports = [json.loads(w.expect("done", timeout=600)) for w in workers]
    seconds = time.monotonic() - began

    expected: dict[int, dict[str, Any]] = {}
    errors: Counter[str] = Counter()
    for report in reports:
        expected.update({int(i): r for i, r in report["runs"].items()})
        errors.update(report["errors"])
    rows = {row.id: row for row in all_runs(db_url)}
    items = item_counts(db_url)
    with Ledger(db_url) as ledger:
        tallied = sum(t.runs for t in ledger.job_tallies())
        active = len(ledger.active_runs())

    lost_runs = [i for i in expected if i not in rows]
    wrong_status = [i for i, r in expected.items() if i in rows and rows[i].status != r["status"]]
    counter_updates = sum(sum(r["counters"].values()) for r in expected.values())
    stored_updates = sum(sum(rows[i].counters.values()) for i in expected if i in rows)
    item_total = sum(sum(r["items"].values()) for r in expected.values())
    stored_items = sum(items.get(i, 0) for i in expected)
    locked = sum(n for e, n in errors.items() if "locked" in e.lower() or "busy" in e.lower())
    deadlocks = sum(n for e, n in errors.items() if "deadlock" in e.lower())
    figures.add(
        "load",
        backend,
        processes=len(workers),
        runs=len(expected),
        counter_updates=counter_updates,
        items=item_total,
        busy_refusals=sum(r["busy"] for r in reports),
        lost_runs=len(lost_runs),
        lost_counter_updates=counter_updates - stored_updates,
        lost_items=item_total - stored_items,
        errors_reaching_user_code=sum(errors.values()),
        database_locked=locked,
        deadlocks=deadlocks,
        runs_per_second=len(expected) / seconds,
    )
    assert not errors, f"errors reached the runs' code: {dict(errors)}"
    assert len(expected) == sizes.load_processes * sizes.load_runs
    assert not lost_runs and not wrong_status
    assert stored_updates == counter_updates
    assert stored_items == item_total
    assert all(
        _counters_match(rows[i].counters, r["counters"]) and _tallies_match(rows[i], r["items"])
        for i, r in expected.items()
    )
    assert tallied == len(rows) == len(expected)
    assert active == 0


def _counters_match(stored: dict[str, Any], recorded: dict[str, int]) -> bool:
    return {k: v for k, v in stored.items() if v} == {k: v for k, v in recorded.items() if v}


def _tallies_match(row: Any, recorded: dict[str, int]) -> bool:
    return bool(row.items_success == recorded.get("success", 0))
