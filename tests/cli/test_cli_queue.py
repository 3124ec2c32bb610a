"""Issue 17 in the CLI: ``runtrack trigger``, ``rerun`` (``--wait`` follows the
run: exit 0 on success/partial, 1 otherwise) and ``limit``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cli_helpers import Invoke
from runner_loop import running

from runtrack import Ledger, Run, RunStatus
from runtrack.runner import Runner

YEARLY = "0 0 1 1 *"


def test_trigger_queues_a_run_with_params(cli: Invoke, ledger: Ledger) -> None:
    ledger.ensure_job("cli:q", provider="acme")
    done = cli(
        "trigger", "cli:q", "--param", "page=2", "-p", "q=python", "--by", "user:ana", "--json"
    )
    assert done.code == 0, done.stderr
    run = done.json()
    assert run["status"] == "pending" and run["triggered_by"] == "user:ana"
    assert run["params"] == {"page": 2, "q": "python"}
    again = cli("trigger", "cli:q", "-p", "q=python", "-p", "page=2")
    assert again.code == 0 and f"run {run['id']} of cli:q: queued" in again.stderr
    assert ledger.count_runs(job="cli:q") == 1


def test_trigger_queues_a_run_with_labels(cli: Invoke, ledger: Ledger) -> None:
    ledger.ensure_job("cli:q", provider="acme")
    done = cli("trigger", "cli:q", "--label", "team=growth", "-l", "source=cli", "--json")
    assert done.code == 0, done.stderr
    run = done.json()
    assert run["labels"] == {"team": "growth", "source": "cli"}
    assert ledger.get_run(run["id"]).labels == {"team": "growth", "source": "cli"}
    other = cli("trigger", "cli:q", "--label", "team=data", "--json")  # other labels: a new run
    assert other.code == 0 and other.json()["id"] != run["id"]
    assert [r.id for r in ledger.list_runs(labels={"team": "growth"}).items] == [run["id"]]


def test_bad_triggers_are_refused(cli: Invoke, ledger: Ledger) -> None:
    assert cli("trigger", "cli:nope").code == 1  # no such job
    ledger.ensure_job("cli:q")
    assert cli("trigger", "cli:q", "--param", "novalue").code == 2
    bad_label = cli("trigger", "cli:q", "--label", "team")
    assert bad_label.code == 2 and "--label" in bad_label.stderr
    assert cli("trigger", "cli:q", "--label", "no spaces=x").code == 2
    assert ledger.count_runs() == 0


def test_waiting_on_a_run_nobody_serves_says_why_and_stops_at_the_timeout(
    cli: Invoke, ledger: Ledger
) -> None:
    ledger.ensure_job("cli:q", provider="acme")
    done = cli("trigger", "cli:q", "--wait", "--timeout", "1s")
    assert done.code == 1  # not ended: no success to report
    run = ledger.list_runs(job="cli:q").items[0]
    expires = (run.created_at + ledger.pending_ttl).strftime("%Y-%m-%d %H:%M:%S")
    said = " ".join(done.stderr.split())  # the console wraps long lines
    assert f"run {run.id}: waits: no live worker serves this job" in said
    assert f"unclaimed, it expires at {expires} UTC" in said
    assert f"run {run.id} of cli:q: still pending after 1.0 s" in said
    assert ledger.get_run(run.id).status is RunStatus.PENDING  # it stays queued
    ledger.pause("acme", for_="1h", reason="429")
    paused = cli("rerun", str(run.id), "--wait", "--timeout", "1s")
    assert paused.code == 1 and "waits: provider acme is paused" in " ".join(paused.stderr.split())
    alone = cli("trigger", "cli:q", "--timeout", "1s")
    assert alone.code == 2 and "give --wait too" in alone.stderr


@contextmanager
def serving(ledger: Ledger, fail: bool) -> Iterator[None]:
    runner = Runner(ledger, poll_interval=0.1, check_every=None)

    @runner.job("cli:served", provider="acme", cron=YEARLY)
    def job(run: Run) -> None:
        if fail:
            raise RuntimeError("boom")

    runner.run_once()
    with running(runner):
        yield


def test_trigger_wait_follows_the_run_to_its_end(cli: Invoke, db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=0.2) as ledger:
        with serving(ledger, fail=False):
            done = cli("trigger", "cli:served", "--wait")
        assert done.code == 0, done.stderr
        assert "success" in done.stderr
        with serving(ledger, fail=True):
            failed = cli("trigger", "cli:served", "--wait", "--json")
        assert failed.code == 1
        assert failed.json()["status"] == "failed"
        with serving(ledger, fail=False):
            rerun = cli("rerun", str(failed.json()["id"]), "--wait", "--json")
        assert rerun.code == 0, rerun.stderr
        assert rerun.json()["rerun_of"] == failed.json()["id"]
        assert ledger.get_run(rerun.json()["id"]).status is RunStatus.SUCCESS


def test_limit_sets_and_lifts_a_provider_limit(cli: Invoke, ledger: Ledger) -> None:
    assert cli("limit", "acme", "3").code == 0
    assert ledger.provider_limits() == {"acme": 3}
    assert cli("limit", "acme", "--lift").code == 0
    assert ledger.provider_limits() == {}
    assert cli("limit", "acme").code == 2
    assert cli("limit", "acme", "0").code == 2
