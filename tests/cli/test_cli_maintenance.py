"""``runtrack migrate``, ``reap`` and ``prune`` on every database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cli_helpers import Invoke, invoke_in_process

from runtrack import Ledger, ManualClock, RunStatus
from runtrack.store.migrate import head_revision


@pytest.fixture
def past_ledger(db_url: str, ledger: Ledger) -> Iterator[tuple[Ledger, ManualClock]]:
    """A second ledger on the same database whose clock is 200 days back."""
    clock = ManualClock(ledger.now() - timedelta(days=200))
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as past:
        yield past, clock


def test_migrate_a_new_database_then_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    first = invoke_in_process(url, "migrate", "--json")
    assert first.code == 0, first.stderr
    assert first.json() == {"from_revision": None, "to_revision": head_revision(), "changed": True}
    again = invoke_in_process(url, "migrate")
    assert again.code == 0 and "up to date" in again.stderr


def test_migrate_an_up_to_date_database(cli: Invoke) -> None:
    out = cli("migrate", "--json")
    assert out.code == 0, out.stderr
    assert out.json()["changed"] is False


def test_reap_finalizes_a_run_whose_worker_went_silent(
    cli: Invoke, ledger: Ledger, past_ledger: tuple[Ledger, ManualClock]
) -> None:
    past, _ = past_ledger
    silent = past.start_run("board:search", provider="jobboard")
    silent.count("pages_fetched", 2)
    past.heartbeat_now()
    out = cli("reap", "--json")
    assert out.code == 0, out.stderr
    assert out.json() == {"reaped": [silent.id]}
    record = ledger.get_run(silent.id)
    assert (record.status, record.error_type) == (RunStatus.FAILED, "heartbeat_timeout")
    assert record.counters == {"pages_fetched": 2}
    assert "no stale runs" in cli("reap").stderr


def test_reap_with_a_stale_after(cli: Invoke, ledger: Ledger, db_url: str) -> None:
    clock = ManualClock(ledger.now() - timedelta(minutes=10))
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as behind:
        run = behind.start_run("crm:contacts")
        assert cli("reap", "--stale-after", "1h", "--json").json() == {"reaped": []}
        assert cli("reap", "--stale-after", "5m", "--json").json() == {"reaped": [run.id]}
    bad = cli("reap", "--stale-after", "soon")
    assert bad.code == 2 and "--stale-after" in bad.stderr


def _old_runs(past: Ledger, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        with past.run("board:search") as run:
            run.item("offer-1", "success")
            run.item("offer-2", "skipped")
        ids.append(run.id)
    return ids


def test_prune_dry_run_then_for_real(
    cli: Invoke, ledger: Ledger, past_ledger: tuple[Ledger, ManualClock]
) -> None:
    past, _ = past_ledger
    ids = _old_runs(past, 4)
    dry = cli("prune", "--older-than", "90d", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    # the latest run (also the latest success) is kept
    assert dry.json() == {"runs": 3, "items": 6, "batches": 1, "dry_run": True}
    assert len(ledger.list_runs().items) == 4
    real = cli("prune", "--older-than", "90d", "--batch-size", "2")
    assert real.code == 0, real.stderr
    assert "deleted 3 run(s) and 6 item(s)" in real.stderr
    assert [r.id for r in ledger.list_runs().items] == [ids[-1]]


def test_prune_items_only_keeps_the_runs(
    cli: Invoke, ledger: Ledger, past_ledger: tuple[Ledger, ManualClock]
) -> None:
    past, _ = past_ledger
    ids = _old_runs(past, 3)
    out = cli("prune", "--older-than", "90d", "--items-only", "--json")
    assert out.json() == {"runs": 0, "items": 4, "batches": 1, "dry_run": False}
    assert len(ledger.list_runs().items) == 3
    assert ledger.list_items(ids[0]).items == []
    assert len(ledger.list_items(ids[-1]).items) == 2


def test_prune_keeps_recent_runs_and_needs_an_age(cli: Invoke, ledger: Ledger) -> None:
    _old_runs(ledger, 2)
    assert cli("prune", "--older-than", "1d", "--json").json()["runs"] == 0
    missing = cli("prune")
    assert missing.code == 2 and "--older-than" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
