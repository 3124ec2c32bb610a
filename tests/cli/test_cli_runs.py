"""``runtrack runs``, ``show`` and ``cancel`` through Typer's CliRunner, on
every database."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from cli_helpers import Invoke, Seeded

from runtrack import Ledger, RunStatus


def test_runs_json_lists_every_run_newest_first(cli: Invoke, seeded: Seeded) -> None:
    out = cli("runs", "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    ids = [run["id"] for run in data["data"]]
    assert ids == sorted([seeded.success, seeded.partial, seeded.failed, seeded.pending])[::-1]
    assert data["next_cursor"] is None
    first = {run["id"]: run for run in data["data"]}[seeded.success]
    assert first["status"] == "success"
    assert first["counters"] == {"lookups": 4}
    assert first["items"] == {"success": 1, "not_found": 3, "skipped": 0, "error": 0}
    assert first["started_at"].endswith("Z")
    datetime.fromisoformat(first["started_at"].replace("Z", "+00:00"))
    assert first["duration_seconds"] >= 0


def test_runs_filters(cli: Invoke, seeded: Seeded) -> None:
    def ids(*args: str) -> list[int]:
        out = cli("runs", "--json", *args)
        assert out.code == 0, out.stderr
        return [run["id"] for run in out.json()["data"]]

    assert ids("--job", "board:search") == [seeded.failed, seeded.partial]
    assert ids("--provider", "pricewatch") == [seeded.success]
    assert ids("--status", "failed", "--status", "partial") == [seeded.failed, seeded.partial]
    assert ids("--triggered-by", "alice") == [seeded.partial]
    assert ids("--since", "1h") == ids()
    assert ids("--until", "1h") == []
    assert ids("--since", "2000-01-01T00:00:00Z", "--until", "2999-01-01") == ids()


def test_runs_pages_with_the_cursor(cli: Invoke, seeded: Seeded) -> None:
    first = cli("runs", "--json", "--limit", "3").json()
    assert len(first["data"]) == 3 and first["next_cursor"]
    second = cli("runs", "--json", "--limit", "3", "--cursor", first["next_cursor"]).json()
    assert [r["id"] for r in second["data"]] == [
        min(first_id["id"] for first_id in first["data"]) - 1
    ]
    assert second["next_cursor"] is None


def test_runs_table_for_people(cli: Invoke, seeded: Seeded) -> None:
    out = cli("runs", "--limit", "2")
    assert out.code == 0
    assert "crm:contacts" in out.stdout and "pending" in out.stdout
    assert "more: --cursor" in out.stderr


def test_runs_on_an_empty_ledger(cli: Invoke) -> None:
    assert cli("runs", "--json").json() == {"data": [], "next_cursor": None}
    empty = cli("runs")
    assert empty.code == 0 and empty.stdout == "" and "no runs" in empty.stderr


def test_show_json_is_the_run_and_groups_lists_its_groups(cli: Invoke, seeded: Seeded) -> None:
    out = cli("show", str(seeded.success), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["id"] == seeded.success
    assert data["params"] == {"q": "tv"}
    assert data["groups"] == {"found": 1, "missing": 1}
    groups = cli("groups", str(seeded.success), "--json")
    assert groups.code == 0, groups.stderr
    assert groups.json()["data"] == [
        {
            "group": "sku-1",
            "counts": {"not_found": 1, "success": 1},
            "found": True,
            "found_in": ["amazon"],
        },
        {"group": "sku-2", "counts": {"not_found": 2}, "found": False, "found_in": []},
    ]
    items = cli("items", str(seeded.success), "--json", "--status", "not_found").json()
    assert [(i["key"], i["source"]) for i in items["data"]] == [
        ("sku-1", "ebay"),
        ("sku-2", "amazon"),
        ("sku-2", "ebay"),
    ]


def test_show_for_people(cli: Invoke, seeded: Seeded) -> None:
    out = cli("show", str(seeded.failed))
    assert out.code == 0
    assert "schema changed" in out.stdout and "RuntimeError" in out.stdout
    groups = cli("show", str(seeded.success)).stdout
    assert "1 found, 1 missing" in groups and "amazon" in groups
    assert '{"q": "tv"}' in groups  # params as JSON, not Python's repr


def test_show_prints_markup_in_data_literally(cli: Invoke, ledger: Ledger) -> None:
    with ledger.run("[bold]job[/bold]", params={"q": "[/]"}) as run:
        run.note("[red]x")
    out = cli("show", str(run.id))
    assert out.code == 0, out.stderr
    assert "[bold]job[/bold]" in out.stdout and "[/]" in out.stdout


def test_show_a_missing_run_fails_with_one_line(cli: Invoke) -> None:
    out = cli("show", "4242")
    assert out.code == 1
    assert out.stderr.strip() == "runtrack: run 4242 does not exist"
    assert out.stdout == ""


def test_cancel_a_pending_run(cli: Invoke, seeded: Seeded, ledger: Ledger) -> None:
    out = cli("cancel", str(seeded.pending), "--reason", "not needed", "--by", "ops", "--json")
    assert out.code == 0, out.stderr
    assert out.json()["status"] == "cancelled"
    record = ledger.get_run(seeded.pending)
    assert (record.status, record.cancel_reason, record.cancel_requested_by) == (
        RunStatus.CANCELLED,
        "not needed",
        "ops",
    )


def test_cancel_a_running_run_stops_its_code(cli: Invoke, ledger: Ledger) -> None:
    started, cancel_sent = threading.Event(), threading.Event()
    ids: list[int] = []

    def work() -> None:
        with ledger.run("slow:job") as run:
            ids.append(run.id)
            started.set()
            cancel_sent.wait(10)  # not touching the handle: the run stays running
            for _ in range(1000):
                run.count("ticks")  # raises RunCancelled once the heartbeat saw it
                time.sleep(0.01)

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(5)
    out = cli("cancel", str(ids[0]))
    cancel_sent.set()
    assert out.code == 0, out.stderr
    assert "cancel requested" in out.stderr
    worker.join(10)
    assert not worker.is_alive()
    record = ledger.get_run(ids[0])
    assert record.status is RunStatus.CANCELLED and record.cancel_requested_by
    assert record.counters.get("ticks", 0) < 1000


def test_cancel_a_finished_run_fails(cli: Invoke, seeded: Seeded) -> None:
    out = cli("cancel", str(seeded.success))
    assert out.code == 1
    assert out.stderr.strip() == (
        f"runtrack: run {seeded.success} is success; only pending or running runs can be cancelled"
    )
