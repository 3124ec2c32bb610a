"""``runtrack runs --label NAME=VALUE`` and labels in ``show`` (issue 16)."""

from __future__ import annotations

from cli_helpers import Invoke

from runtrack import Ledger


def test_runs_filter_on_labels_and_show_them(cli: Invoke, ledger: Ledger) -> None:
    with ledger.run("cli:labels", labels={"team": "growth", "tier": "gold"}) as both:
        pass
    with ledger.run("cli:labels", labels={"team": "growth", "url": "a=b:c"}) as team:
        pass
    with ledger.run("cli:labels"):
        pass

    def ids(*args: str) -> list[int]:
        out = cli("runs", "--json", *args)
        assert out.code == 0, out.stderr
        return [run["id"] for run in out.json()["data"]]

    assert ids("--label", "team=growth") == [team.id, both.id]
    assert ids("--label", "team=growth", "-l", "tier=gold") == [both.id]
    assert ids("--label", "url=a=b:c") == [team.id]  # split at the first '='
    assert ids("--label", "team=core") == []
    listed = cli("runs", "--json", "--label", "tier=gold").json()["data"]
    assert listed[0]["labels"] == {"team": "growth", "tier": "gold"}
    wide = cli("runs", "--wide", "--label", "tier=gold")
    assert wide.code == 0 and "team=growth tier=gold" in wide.stdout  # a labels column
    shown = cli("show", str(both.id))
    assert shown.code == 0, shown.stderr
    assert "labels" in shown.stdout and "team=growth tier=gold" in shown.stdout
    assert cli("show", str(both.id), "--json").json()["labels"] == {
        "team": "growth",
        "tier": "gold",
    }


def test_a_malformed_label_filter_is_a_usage_error(cli: Invoke, ledger: Ledger) -> None:
    for bad in ("team", "team=", "=growth", "te am=x", "team=a\x01"):
        out = cli("runs", "--label", bad)
        assert out.code == 2, (bad, out.stdout, out.stderr)
        assert "label" in out.stderr and "allowed" in out.stderr, out.stderr
    twice = cli("runs", "--label", "team=a", "--label", "team=b")
    assert twice.code == 2 and "twice" in twice.stderr
