"""``runtrack carried JOB [--json] [--forget ID]`` on every database."""

from __future__ import annotations

from datetime import timedelta

from cli_helpers import Invoke

from runtrack import Ledger

JOB = "board:search"


def owe(ledger: Ledger) -> None:
    with ledger.run(JOB, max_carry_attempts=1) as run:
        run.item("offer-9", "error", source="board", error="HTTP 500")
    with ledger.run(JOB) as run:
        now = ledger.now()
        run.failed_slice(now - timedelta(hours=2), now - timedelta(hours=1), "HTTP 502")


def test_carried_lists_owed_and_given_up(cli: Invoke, ledger: Ledger) -> None:
    owe(ledger)
    out = cli("carried", JOB, "--json")
    assert out.code == 0, out.stderr
    body = out.json()
    assert body["job"] == JOB
    (item,) = body["items"]
    assert (item["key"], item["state"], item["attempts"]) == ("offer-9", "given_up", 1)
    (piece,) = body["slices"]
    assert (piece["state"], piece["reason"]) == ("owed", "HTTP 502")
    assert piece["start"].endswith("Z")
    table = cli("carried", JOB)
    assert table.code == 0
    assert "offer-9" in table.stdout and "given_up" in table.stdout and "owed" in table.stdout


def test_forget_drops_one_entry(cli: Invoke, ledger: Ledger) -> None:
    owe(ledger)
    entry = ledger.carried(JOB).items[0].id
    out = cli("carried", JOB, "--forget", str(entry), "--json")
    assert out.code == 0, out.stderr
    assert out.json() == {"job": JOB, "forgotten": entry}
    assert not ledger.carried(JOB).items
    again = cli("carried", JOB, "--forget", str(entry))
    assert again.code == 1
    assert f"owes no carried entry {entry}" in again.stderr


def test_a_job_that_owes_nothing_and_an_unknown_job(cli: Invoke, ledger: Ledger) -> None:
    with ledger.run("clean:job"):
        pass
    clean = cli("carried", "clean:job")
    assert clean.code == 0 and "clean:job owes nothing" in clean.stderr
    assert cli("carried", "clean:job", "--json").json() == {
        "job": "clean:job",
        "items": [],
        "slices": [],
    }
    unknown = cli("carried", "no:such")
    assert unknown.code == 1 and "does not exist" in unknown.stderr
