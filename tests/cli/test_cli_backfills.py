"""Issue 17 in the CLI: ``runtrack backfill JOB --from --to --every``,
``backfill resume ID``, ``backfill cancel ID`` and ``backfills``; ``--json``
is the API's shape."""

from __future__ import annotations

from cli_helpers import Invoke

from runtrack import Ledger


def test_backfill_queues_windows_and_lists_them(cli: Invoke, ledger: Ledger) -> None:
    ledger.ensure_job("cli:bf", provider="acme")
    done = cli(
        "backfill",
        "cli:bf",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-03T12:00:00Z",
        "--every",
        "1d",
        "--by",
        "user:ana",
        "--json",
    )
    assert done.code == 0, done.stderr
    shape = done.json()
    assert shape["windows"] == 3 and shape["every_seconds"] == 86400
    assert shape["start"] == "2026-01-01T00:00:00Z" and shape["end"] == "2026-01-03T12:00:00Z"
    assert shape["state"] == "running" and shape["progress"]["queued"] == 3
    assert shape["triggered_by"] == "user:ana"
    listed = cli("backfills", "--json")
    assert listed.code == 0 and [b["id"] for b in listed.json()["data"]] == [shape["id"]]
    table = cli("backfills")
    assert table.code == 0 and "cli:bf" in table.stdout and "0/3 done" in table.stdout

    cancelled = cli("backfill", "cancel", str(shape["id"]), "--json")
    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["progress"]["failed"] == 3
    resumed = cli("backfill", "resume", str(shape["id"]))
    assert resumed.code == 0 and "resumed" in resumed.stderr and "3 queued" in resumed.stderr


def test_bad_backfills_are_refused(cli: Invoke, ledger: Ledger) -> None:
    ledger.ensure_job("cli:bf")
    assert cli("backfill", "cli:nope", "--from", "2d", "--to", "1d").code == 1
    assert cli("backfill", "cli:bf", "--from", "1d", "--to", "2d").code != 0  # end before start
    assert cli("backfill", "cli:bf", "--from", "2d", "--to", "1d", "--every", "x").code != 0
    assert cli("backfill", "cli:bf", "--from", "2d").code != 0
    assert cli("backfill", "resume", "99").code != 0
    assert ledger.backfills() == []
