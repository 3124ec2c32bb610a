"""Exit codes, one-line errors, ``--debug`` tracebacks without locals, log formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import invoke_in_process
from typer.testing import CliRunner

from runtrack import Ledger, __version__
from runtrack.cli import app

BAD_ARGUMENTS = [
    ["runs", "--status", "bogus"],
    ["runs", "--limit", "0"],
    ["runs", "--since", "yesterday-ish"],
    ["runs", "--cursor", "not-a-cursor"],
    ["runs", "--bogus"],
    ["show"],
    ["show", "abc"],
    ["cancel", "0"],
    ["jobs", "extra"],
    ["pause", "p", "--for", "15 minutes", "--reason", "x"],
    ["pause", "p", "--for", "1m"],
    ["prune", "--older-than", "-5d"],
    ["prune", "--older-than", "90d", "--batch-size", "0"],
    ["reap", "--stale-after", "0"],
    ["serve", "--port", "70000"],
    ["worker"],
    ["worker", "no_colon_here"],
    ["demo", "--duration", "0"],
    ["no-such-command"],
]


@pytest.mark.parametrize("args", BAD_ARGUMENTS, ids=" ".join)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    Ledger(url).close()  # a missing ledger is exit 1 for a reading command
    out = invoke_in_process(url, *args)
    assert out.code == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stdout == ""


def test_usage_errors_name_the_option_and_the_help(tmp_path: Path) -> None:
    out = invoke_in_process(f"sqlite:///{tmp_path}/x.db", "runs", "--status", "bogus")
    assert "--status" in out.stderr and "'runtrack runs --help'" in out.stderr


def test_a_bad_configuration_is_a_usage_error(tmp_path: Path) -> None:
    out = invoke_in_process(
        f"sqlite:///{tmp_path}/x.db", "runs", env={"RUNTRACK_HEARTBEAT_INTERVAL": "0.001"}
    )
    assert out.code == 2
    assert out.stderr.strip().startswith("runtrack: RUNTRACK_HEARTBEAT_INTERVAL")


def test_an_unreachable_database_is_one_line_and_exit_1() -> None:
    url = "postgresql://someone:hunter2-secret@127.0.0.1:1/nothing"
    out = invoke_in_process(url, "runs")
    assert out.code == 1
    assert len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("runtrack: database error")
    assert "hunter2-secret" not in out.stderr


def test_debug_shows_the_traceback_but_never_locals() -> None:
    url = "postgresql://someone:hunter2-secret@127.0.0.1:1/nothing"
    out = invoke_in_process(url, "--debug", "runs")
    assert out.code == 1
    assert "Traceback (most recent call last)" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("runtrack: database error")
    assert "hunter2-secret" not in out.stderr


def test_an_unexpected_error_is_one_line_unless_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_runner.py").write_text(
        "class R:\n"
        "    def run_forever(self):\n"
        "        password = 'hunter2-secret'\n"
        "        raise ValueError('a bug in the job code')\n"
        "runner = R()\n"
    )
    url = f"sqlite:///{tmp_path}/x.db"
    out = invoke_in_process(url, "worker", "broken_runner:runner")
    assert out.code == 1
    assert out.stderr.strip() == (
        "runtrack: unexpected ValueError: a bug in the job code (run with --debug for details)"
    )
    debug = invoke_in_process(url, "--debug", "worker", "broken_runner:runner")
    assert "raise ValueError('a bug in the job code')" in debug.stderr
    assert "hunter2-secret" not in debug.stderr


def test_worker_explains_a_target_that_is_not_a_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "not_a_runner.py").write_text("runner = 42\n")
    url = f"sqlite:///{tmp_path}/x.db"
    wrong = invoke_in_process(url, "worker", "not_a_runner:runner")
    assert wrong.code == 2 and "not a Runner" in wrong.stderr
    missing = invoke_in_process(url, "worker", "not_a_runner:nothing")
    assert missing.code == 2 and "has no attribute 'nothing'" in missing.stderr
    absent = invoke_in_process(url, "worker", "no_such_module_here:runner")
    assert absent.code == 2 and "no module named 'no_such_module_here'" in absent.stderr


def test_json_log_lines(tmp_path: Path) -> None:
    # A new database is migrated, which logs at INFO (shown with --debug); an
    # up-to-date one is opened without a log line. Every line on stderr is
    # one JSON object.
    out = invoke_in_process(
        f"sqlite:///{tmp_path}/new.db", "--log-format", "json", "--debug", "migrate"
    )
    assert out.code == 0
    records = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert records, out.stderr
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_version_and_bare_help() -> None:
    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.strip() == f"runtrack {__version__}"
    bare = runner.invoke(app, [])
    assert bare.exit_code == 0 and "demo" in bare.stdout and "Usage" in bare.stdout
