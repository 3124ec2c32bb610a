"""``runtrack check`` and ``runtrack incidents`` (issue 18): cron users get
an exit code (0 nothing open, 1 otherwise) and the incidents in a table or
JSON."""

from __future__ import annotations

import time

from cli_helpers import Invoke

from runtrack import Ledger


def test_check_exits_1_while_an_incident_is_open_and_0_once_resolved(
    cli: Invoke, ledger: Ledger
) -> None:
    ledger.expect("shop:offers", success_within=0.5)
    ledger.expect("shop:ok", success_within="1h")
    first = cli("check", "--json")
    assert first.code == 0, first.stderr
    assert first.json()["open"] == []
    time.sleep(0.6)

    late = cli("check", "--json")
    assert late.code == 1, late.stderr
    body = late.json()
    assert [(i["kind"], i["job"]) for i in body["opened"]] == [("late", "shop:offers")]
    assert [i["job"] for i in body["open"]] == ["shop:offers"]
    table = cli("check")
    assert table.code == 1 and "shop:offers" in table.stdout and "late" in table.stdout
    listed = cli("incidents", "--open", "--json")
    assert listed.code == 0 and [i["job"] for i in listed.json()] == ["shop:offers"]

    with ledger.run("shop:offers"):
        pass
    resolved = cli("check", "--json")
    assert resolved.code == 0, resolved.stderr
    assert [i["job"] for i in resolved.json()["resolved"]] == ["shop:offers"]
    history = cli("incidents")
    assert history.code == 0 and "resolved" in history.stdout
    assert cli("incidents", "--limit", "0").code == 2  # a bad value is a usage error


def test_jobs_shows_each_jobs_health(cli: Invoke, ledger: Ledger) -> None:
    with ledger.run("shop:ok"):
        pass
    try:
        with ledger.run("shop:broken"):
            raise ValueError("boom")
    except ValueError:
        pass
    with ledger.run("maps:geo", provider="maps"):
        pass
    ledger.pause("maps", for_=600, reason="429")
    table = cli("jobs")
    assert table.code == 0, table.stderr
    words = [line.split() for line in table.stdout.splitlines()]
    rows = {w[0]: w[1] for w in words if len(w) > 1}
    assert {k: rows.get(k) for k in ("shop:ok", "shop:broken", "maps:geo")} == {
        "shop:ok": "healthy",
        "shop:broken": "failing",
        "maps:geo": "paused",
    }
