"""Guarantee 2: every counter the job touched is in the database."""

from __future__ import annotations

import pytest

from runtrack import Ledger


def test_arbitrary_counter_names_all_persisted(ledger: Ledger) -> None:
    names = [f"counter_{i}" for i in range(50)] + ["offers fetched", "ñandú", "a.b/c:d"]
    with ledger.run("jobs:counters") as run:
        for i, name in enumerate(names):
            run.count(name, i)
            run.count(name)
        run.set_counter("ratio", 0.25)
    counters = ledger.get_run(run.id).counters
    assert counters == {**{n: i + 1 for i, n in enumerate(names)}, "ratio": 0.25}


def test_counters_persisted_when_the_block_fails(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.run("jobs:counters-fail") as run:
        run.count("fetched", 40)
        run.count("created", 3)
        raise RuntimeError("parse error")
    assert ledger.get_run(run.id).counters == {"fetched": 40, "created": 3}


def test_progress_persisted(ledger: Ledger) -> None:
    with ledger.run("jobs:progress") as run:
        run.set_total(10)
        run.advance(4)
        run.advance()
    record = ledger.get_run(run.id)
    assert (record.progress_done, record.progress_total) == (5, 10)


def test_heartbeat_flushes_counters_while_running(ledger: Ledger) -> None:
    with ledger.run("jobs:flush") as run:
        run.count("fetched", 11)
        run.advance(3)
        ledger.heartbeat_now()
        live = ledger.get_run(run.id)
        assert live.counters == {"fetched": 11}
        assert live.progress_done == 3
        assert live.heartbeat_at is not None
