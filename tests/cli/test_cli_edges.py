"""The CLI's edges a newcomer meets first, each through a real process with
its output piped: durations with a unit, a prune that asks on a terminal,
reads that never create a ledger, typos refused, tables that do not lie."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cli_helpers import invoke_process

from runtrack import Ledger, ManualClock


def _old_runs(ledger: Ledger, n: int) -> None:
    with Ledger(ledger.url, clock=ManualClock(ledger.now() - timedelta(days=200))) as past:
        for _ in range(n):
            with past.run("board:search") as run:
                run.item("offer-1", "success")


@pytest.mark.parametrize(
    "args",
    [
        ["prune", "--older-than", "90"],
        ["pause", "crm", "--for", "15", "--reason", "quota"],
        ["runs", "--since", "24"],
        ["reap", "--stale-after", "300"],
    ],
)
def test_a_duration_without_a_unit_is_a_usage_error(
    ledger: Ledger, db_url: str, args: list[str]
) -> None:
    _old_runs(ledger, 2)
    out = invoke_process(db_url, *args)
    assert out.code == 2, out
    assert "no unit" in out.stderr and "90d, 15m, 30s" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert ledger.count_runs() == 2 and ledger.pauses() == []


def _on_a_terminal(db_url: str, args: list[str], answer: bytes) -> tuple[int, str]:
    """Run with stdin a pseudo-terminal (stdout and stderr piped), typing ``answer``."""
    master, slave = os.openpty()
    env = dict(os.environ, RUNTRACK_DATABASE_URL=db_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "runtrack", *args],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    os.close(slave)
    try:
        os.write(master, answer)
        _, err = process.communicate(timeout=60)
    finally:
        os.close(master)
    return process.returncode, err


def test_prune_on_a_terminal_counts_and_asks_first(ledger: Ledger, db_url: str) -> None:
    _old_runs(ledger, 3)
    code, err = _on_a_terminal(db_url, ["prune", "--older-than", "90d"], b"n\n")
    assert code == 1 and "delete 2 run(s) and 2 item(s) older than 90d?" in err, err
    assert "nothing deleted" in err and ledger.count_runs() == 3
    code, err = _on_a_terminal(db_url, ["prune", "--older-than", "90d"], b"y\n")
    assert code == 0 and "deleted 2 run(s)" in err, err
    assert ledger.count_runs() == 1


def test_prune_yes_and_piped_stdin_do_not_ask(ledger: Ledger, db_url: str) -> None:
    _old_runs(ledger, 3)
    code, err = _on_a_terminal(db_url, ["prune", "--older-than", "90d", "--yes"], b"")
    assert code == 0 and "?" not in err and ledger.count_runs() == 1, err
    _old_runs(ledger, 2)
    piped = invoke_process(db_url, "prune", "--older-than", "90d")  # stdin not a terminal
    assert piped.code == 0 and "deleted" in piped.stderr, piped


def _bare_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m runtrack`` without RUNTRACK_DATABASE_URL, output piped."""
    clean = {k: v for k, v in os.environ.items() if k != "RUNTRACK_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "runtrack", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args", [["runs"], ["jobs"], ["providers"], ["show", "1"], ["runs", "--json"], ["reap"]]
)
def test_reading_never_creates_a_ledger(tmp_path: Path, args: list[str]) -> None:
    done = _bare_process(*args, cwd=tmp_path)
    assert done.returncode == 1, done
    assert done.stderr.strip() == (
        f"runtrack: no ledger at {tmp_path / 'runtrack.db'}; `runtrack migrate` creates one"
    )
    assert done.stdout == "" and list(tmp_path.iterdir()) == []


def test_a_misspelt_sqlite_path_is_not_created(tmp_path: Path) -> None:
    done = _bare_process("runs", "--database-url", "sqlite:///ledgr.db", cwd=tmp_path)
    assert done.returncode == 1 and "no ledger at" in done.stderr, done
    assert not (tmp_path / "ledgr.db").exists()


def test_serve_refuses_a_missing_ledger(tmp_path: Path) -> None:
    done = _bare_process("serve", "--port", "1", cwd=tmp_path)
    assert done.returncode == 1 and "no ledger at" in done.stderr, done
    assert list(tmp_path.iterdir()) == []


def test_migrate_creates_then_reads_work(tmp_path: Path) -> None:
    assert _bare_process("migrate", cwd=tmp_path).returncode == 0
    done = _bare_process("runs", "--json", cwd=tmp_path)
    assert done.returncode == 0 and [] in json.loads(done.stdout).values(), done


@pytest.mark.parametrize("where", ["before", "after", "after="])
def test_database_url_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    assert _bare_process("--database-url", url, "migrate", cwd=tmp_path).returncode == 0
    args = {
        "before": ["--database-url", url, "jobs", "--json"],
        "after": ["jobs", "--json", "--database-url", url],
        "after=": ["jobs", f"--database-url={url}", "--json"],
    }[where]
    done = _bare_process(*args, cwd=tmp_path)
    assert done.returncode == 0, done
    assert not (tmp_path / "runtrack.db").exists()


def test_pausing_an_unknown_provider_is_refused_unless_new(ledger: Ledger, db_url: str) -> None:
    ledger.ensure_job("crm:contacts", provider="crm")
    ledger.ensure_job("board:search", provider="jobboard")
    typo = invoke_process(db_url, "pause", "jobbord", "--for", "15m", "--reason", "429")
    assert typo.code == 1 and "known providers: crm, jobboard" in typo.stderr, typo
    assert "--new" in typo.stderr and ledger.pauses() == []
    new = invoke_process(db_url, "pause", "jobbord", "--for", "15m", "--reason", "429", "--new")
    assert new.code == 0, new
    assert [p.provider for p in ledger.pauses()] == ["jobbord"]


def test_pause_new_may_create_the_ledger(tmp_path: Path) -> None:
    args = ["pause", "crm", "--for", "15m", "--reason", "429"]
    refused = _bare_process(*args, cwd=tmp_path)
    assert refused.returncode == 1 and "no ledger at" in refused.stderr, refused
    assert _bare_process(*args, "--new", cwd=tmp_path).returncode == 0


COUNTERS = {"records_imported": 290, "pages_fetched_from_api": 12, "duplicates_skipped": 3}
LONG_JOB = "infojobs:search:python-madrid-and-barcelona-remote"


def _runs_with_counters(ledger: Ledger) -> None:
    for _ in range(2):
        with ledger.run(LONG_JOB, provider="infojobs") as run:
            for name, n in COUNTERS.items():
                run.count(name, n)


def _on_a_tty(db_url: str, columns: int, *args: str) -> tuple[str, str]:
    """Run with stdout a pseudo-terminal ``columns`` wide; (stdout, stderr)."""
    master, slave = os.openpty()
    env = dict(os.environ, RUNTRACK_DATABASE_URL=db_url, COLUMNS=str(columns), NO_COLOR="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "runtrack", *args],
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    _, err = process.communicate(timeout=60)
    out = b"".join(chunks).decode().replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;]*m", "", out), err  # bold headers


def _counter_tokens() -> list[str]:
    return [f"{name}={n}" for name, n in COUNTERS.items()]


@pytest.mark.parametrize("columns", ["80", "40"])
def test_piped_tables_are_never_cut(ledger: Ledger, db_url: str, columns: str) -> None:
    _runs_with_counters(ledger)
    env = dict(os.environ, RUNTRACK_DATABASE_URL=db_url, COLUMNS=columns)
    for command in (["runs"], ["jobs"], ["providers"]):
        done = subprocess.run(
            [sys.executable, "-m", "runtrack", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done
        assert "…" not in done.stdout and done.stderr == "", done
        if command == ["runs"]:
            header = done.stdout.strip().splitlines()[0].split()
            assert header == [
                "id",
                "job",
                "status",
                "started",
                "(UTC)",
                "duration",
                "provider",
                "counters",
            ]
            assert LONG_JOB in done.stdout
            assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", done.stdout)
            for line in done.stdout.splitlines()[3:5]:
                assert all(token in line for token in _counter_tokens()), line


def test_a_terminal_table_names_the_columns_it_drops(ledger: Ledger, db_url: str) -> None:
    _runs_with_counters(ledger)
    out, err = _on_a_tty(db_url, 80, "runs")
    assert max(len(line) for line in out.splitlines()) <= 80
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", out), out  # times are never cut
    assert err.strip() == "not shown at 80 columns: provider, counters (--wide shows all)"
    wide, err = _on_a_tty(db_url, 80, "runs", "--wide")
    assert err == "" and LONG_JOB in wide and all(t in wide for t in _counter_tokens())


def test_terminal_counters_wrap_between_words_never_inside_one(ledger: Ledger, db_url: str) -> None:
    _runs_with_counters(ledger)
    out, err = _on_a_tty(db_url, 130, "runs")
    assert "counters" in out and "counters" not in err, (out, err)
    words = out.split()
    assert all(token in words for token in _counter_tokens()), out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["runs", "--status", "nope"], "'nope' is not one of 'pending'"),
        (["runs", "--limit", "0"], "--limit': must be at least 1"),
        (["show", "abc"], "must be a whole number"),
        (["serve", "--port", "70000"], "must be at most 65535"),
        (["pause", "x", "--for", "1x", "--reason", "r"], "'1x' is not a duration (30s, 15m"),
    ],
)
def test_usage_errors_speak_plainly(tmp_path: Path, args: list[str], says: str) -> None:
    done = _bare_process(*args, cwd=tmp_path)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    for jargon in ("Value error", "Input should", "timedelta"):
        assert jargon not in done.stderr


@pytest.mark.parametrize("command", [[], ["runs"], ["prune"], ["demo"], ["pause"]])
def test_help_shows_flags_as_flags(tmp_path: Path, command: list[str]) -> None:
    done = _bare_process(*command, "--help", cwd=tmp_path, env={"COLUMNS": "120"})
    assert done.returncode == 0 and "--help" in done.stdout, done
    assert "<bool>" not in done.stdout
