"""``runtrack demo``: a real process on an embedded SQLite ledger that ends
with runs in every terminal state and a paused provider."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from cli_helpers import free_port, stop, wait_for_http
from rich.console import Console

from runtrack import Ledger, RunRecord, RunStatus
from runtrack.config import Settings
from runtrack.demo import run_demo


def _without_database_url() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RUNTRACK_DATABASE_URL"}


@pytest.fixture(scope="module")
def demo_dir(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One ``runtrack demo --no-serve --duration 10`` in an empty directory."""
    where = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "runtrack", "demo", "--no-serve", "--duration", "10", "--seed", "1"],
        cwd=where,
        env=dict(_without_database_url(), COLUMNS="120"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return where, done


@pytest.fixture(scope="module")
def demo_runs(demo_dir: tuple[Path, subprocess.CompletedProcess[str]]) -> list[RunRecord]:
    where, done = demo_dir
    assert done.returncode == 0, done.stderr
    with Ledger(f"sqlite:///{where}/runtrack.db") as ledger:
        return ledger.list_runs(limit=1000).items


def test_the_demo_writes_runtrack_db_in_the_current_directory(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    where, done = demo_dir
    assert done.returncode == 0, done.stderr
    assert (where / "runtrack.db").exists()
    assert f"SQLite file {where / 'runtrack.db'}" in done.stdout


def test_the_demo_ends_with_the_line_to_copy(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    where, done = demo_dir
    last = done.stdout.strip().splitlines()[-1]
    assert last == f"export RUNTRACK_DATABASE_URL=sqlite:///{where / 'runtrack.db'}"


def test_the_ledger_holds_runs_in_every_state(demo_runs: list[RunRecord]) -> None:
    statuses = {run.status for run in demo_runs}
    assert {RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED} <= statuses
    assert not any(run.is_active for run in demo_runs), "the demo leaves no run active"
    reaped = [run for run in demo_runs if run.error_type == "heartbeat_timeout"]
    assert len(reaped) == 1 and reaped[0].status is RunStatus.FAILED
    assert reaped[0].counters["records_imported"] > 0  # flushed by heartbeats before the kill
    cancelled = [run for run in demo_runs if run.job == "archive:backfill:2023"]
    assert [run.status for run in cancelled] == [RunStatus.CANCELLED]
    assert cancelled[0].cancel_requested_by == "demo-operator"


def test_a_provider_is_paused_after_rate_limiting(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]], demo_runs: list[RunRecord]
) -> None:
    where, _ = demo_dir
    with Ledger(f"sqlite:///{where}/runtrack.db") as ledger:
        pause = ledger.paused("geocoder")
    assert pause is not None and "429" in pause.reason
    limited = [run for run in demo_runs if run.job == "geocoder:enrich:addresses"]
    assert limited and all(run.status is RunStatus.FAILED for run in limited)
    assert limited[0].error_type == "rate_limited"  # issue 18: named as a rate limit


def test_each_scenario_recorded_what_it_counted(demo_runs: list[RunRecord]) -> None:
    def first(job: str) -> RunRecord:
        return next(run for run in reversed(demo_runs) if run.job == job)

    assert {"pages_fetched", "offers_fetched"} <= set(
        first("jobboard:search:python-madrid").counters
    )
    prices = first("pricewatch:prices:electronics")
    assert prices.items["success"] and prices.items["not_found"]
    assert (prices.groups_found, prices.groups_missing) == (7, 1)  # sku-5008: listed nowhere
    assert {"fetched", "created", "updated", "skipped"} <= set(first("crm:sync:contacts").counters)
    discovery = [run for run in reversed(demo_runs) if run.job == "sam:discovery:naics"]
    assert len(discovery) >= 2
    for before, after in pairwise(discovery):
        assert after.window_start == before.window_end  # incremental, no gap


def test_a_page_the_job_board_lost_is_owed_until_a_run_fetches_it(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]], demo_runs: list[RunRecord]
) -> None:
    where, _ = demo_dir
    board = [run for run in demo_runs if run.job == "jobboard:search:python-madrid"]
    with Ledger(f"sqlite:///{where}/runtrack.db") as ledger:
        lost = {
            run.id: [i.key for i in ledger.list_items(run.id, status="error").items]
            for run in board
            if run.status is RunStatus.PARTIAL
        }
        owed = [item.key for item in ledger.carried(board[0].job).items]
    assert lost, "the seed loses a page in some run"
    assert all(keys == ["page-3"] for keys in lost.values())  # the flaky page, as an item
    # Owed after a run that lost it, settled by the next run that fetched it.
    last = max(board, key=lambda run: run.id)
    assert owed == ([] if last.status is RunStatus.SUCCESS else ["page-3"])


def test_the_summary_names_every_job(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, done = demo_dir
    for job in ("jobboard:search:python-madrid", "pricewatch:prices:electronics",
                "crm:sync:contacts", "sam:discovery:naics", "geocoder:enrich:addresses",
                "feeds:import:catalog", "archive:backfill:2023"):  # fmt: skip
        assert job in done.stdout
    assert "killed with SIGKILL" in done.stdout and "heartbeat_timeout" in done.stdout
    assert "paused geocoder" in done.stdout


SCHEDULED = (
    "jobboard:search:python-madrid",
    "pricewatch:prices:electronics",
    "crm:sync:contacts",
    "sam:discovery:naics",
    "geocoder:enrich:addresses",
)


def test_the_same_seed_tells_the_same_story(tmp_path: Path) -> None:
    def first_runs(name: str) -> dict[str, tuple[object, ...]]:
        settings = Settings(database_url=f"sqlite:///{tmp_path}/{name}.db")
        run_demo(settings, duration=1, seed=42, serve=None, console=Console(file=io.StringIO()))
        with Ledger(settings.database_url) as ledger:
            return {
                job: (run.status, run.counters, run.items, run.groups_found)
                for job in SCHEDULED
                for run in ledger.list_runs(job=job, limit=1000).items[-1:]
            }

    first = first_runs("a")
    assert set(first) == set(SCHEDULED)
    assert first_runs("b") == first


def test_the_demo_serves_the_dashboard(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "runtrack", "demo", "--duration", "1", "--port", str(port)],
        cwd=tmp_path,
        env=_without_database_url(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        page = wait_for_http(f"http://127.0.0.1:{port}/", demo, timeout=60)
    finally:
        code, err = stop(demo)
    assert b"sam:discovery:naics" in page
    assert code == 0, err
    assert f"http://localhost:{port}/" in err
