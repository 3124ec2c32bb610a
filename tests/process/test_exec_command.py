"""``runtrack exec``: the console script runs real commands (sh, Python,
Node.js), on every backend, and the ledger records what they did."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtrack import Ledger, RunRecord, RunStatus

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
RUNTRACK = Path(sys.executable).with_name("runtrack")
PY = sys.executable


def runtrack_exec(
    db_url: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """``runtrack exec ARGS`` through the console script, stdout and stderr piped."""
    command = [str(RUNTRACK)] if RUNTRACK.exists() else [PY, "-m", "runtrack"]
    full_env = {
        **os.environ,
        "RUNTRACK_DATABASE_URL": db_url,
        "RUNTRACK_HEARTBEAT_INTERVAL": "0.1",
        "RUNTRACK_CANCEL_GRACE": "3",
        **(env or {}),
    }
    return subprocess.Popen(
        [*command, "exec", *args],
        env=full_env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # As from a terminal or cron: a suite started in the background by a
        # shell without job control inherits SIGINT ignored, and an ignored
        # SIGINT stays ignored by `runtrack exec` (as with nohup).
        preexec_fn=_sigint_default,
    )


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def only_run(ledger: Ledger, job: str) -> RunRecord:
    runs = ledger.list_runs(job=job).items
    assert len(runs) == 1, runs
    return runs[0]


def wait_running(ledger: Ledger, job: str, timeout: float = 30) -> RunRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = ledger.active_runs(job)
        if active:
            return active[0]
        time.sleep(0.05)
    raise AssertionError(f"no run of {job} started within {timeout} s")


def read_line(proc: subprocess.Popen[bytes]) -> bytes:
    assert proc.stdout is not None
    return proc.stdout.readline()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started; killed at the end whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=20)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_exit_0_records_what_the_command_reported(ledger: Ledger, db_url: str) -> None:
    script = textwrap.dedent(
        """
        echo "run $RUNTRACK_RUN_ID of $RUNTRACK_JOB from [$RUNTRACK_WINDOW_START]" \
             "to $RUNTRACK_WINDOW_END"
        echo "previous checkpoint [$RUNTRACK_CHECKPOINT]"
        echo "::runtrack count pages"
        echo "::runtrack count offers 40"
        echo "::runtrack set queue_depth 7"
        echo "::runtrack progress 1 2"
        echo "::runtrack item offer-1 success board-a feed"
        echo "::runtrack item offer-2 not_found board-a feed"
        echo "::runtrack progress 2"
        echo "::runtrack note fetched two pages"
        echo '::runtrack checkpoint {"v": 1, "page": "p2"}'
        echo "bye"
        """
    )
    code, out, err = finish(
        runtrack_exec(db_url, "board:search", "--provider", "board", "--param", "q=python",
                      "--param", "city=madrid", "--", "sh", "-c", script)
    )  # fmt: skip
    assert code == 0, err
    run = only_run(ledger, "board:search")
    assert run.status is RunStatus.SUCCESS
    assert (run.provider, run.params) == ("board", {"q": "python", "city": "madrid"})
    assert run.counters == {"pages": 1, "offers": 40, "queue_depth": 7}
    assert (run.progress_done, run.progress_total) == (2, 2)
    assert run.items == {"success": 1, "not_found": 1, "skipped": 0, "error": 0}
    assert run.notes == ["fetched two pages"]
    assert run.checkpoint == {"v": 1, "page": "p2"}
    assert [item.key for item in ledger.list_items(run.id).items] == ["offer-1", "offer-2"]
    end = run.window_end.isoformat().replace("+00:00", "Z") if run.window_end else ""
    assert out == (f"run {run.id} of board:search from [] to {end}\nprevious checkpoint []\nbye\n")
    assert "::runtrack" not in out and err == ""
    # The next run starts where this one's window ended, from its checkpoint.
    code, out, err = finish(
        runtrack_exec(db_url, "board:search", "--", "sh", "-c",
                      'echo "$RUNTRACK_WINDOW_START $RUNTRACK_CHECKPOINT"')
    )  # fmt: skip
    assert code == 0, err
    assert out == f'{end} {{"v": 1, "page": "p2"}}\n'


def test_exit_3_fails_with_the_code_and_the_end_of_stderr(ledger: Ledger, db_url: str) -> None:
    script = (
        'echo "::runtrack count pages 2"; for i in $(seq 1 60); do echo "line $i" >&2; done; exit 3'
    )
    code, out, err = finish(runtrack_exec(db_url, "crm:sync", "--", "sh", "-c", script))
    assert code == 3
    assert out == ""
    assert err.splitlines() == [f"line {i}" for i in range(1, 61)]  # stderr passed through
    run = only_run(ledger, "crm:sync")
    assert run.status is RunStatus.FAILED
    assert (run.error_type, run.error_message) == ("exit_code", "the command exited with code 3")
    assert run.counters == {"pages": 2}
    assert run.error_details is not None
    assert run.error_details["exit_code"] == 3 and run.error_details["signal"] is None
    assert run.error_details["stderr_tail"] == [f"line {i}" for i in range(11, 61)]


def test_killed_by_a_signal(ledger: Ledger, db_url: str) -> None:
    code, _, _ = finish(runtrack_exec(db_url, "geo:batch", "--", "sh", "-c", "kill -KILL $$"))
    assert code == 128 + signal.SIGKILL
    run = only_run(ledger, "geo:batch")
    assert run.status is RunStatus.FAILED
    assert run.error_type == "signal"
    assert run.error_message == "the command was killed by SIGKILL (9)"
    assert run.error_details is not None and run.error_details["signal"] == "SIGKILL"


def test_reported_errors_make_it_partial(ledger: Ledger, db_url: str) -> None:
    script = 'echo "::runtrack error page 2: HTTP 502"; echo "::runtrack item sku-9 error"'
    code, _, err = finish(runtrack_exec(db_url, "shop:prices", "--", "sh", "-c", script))
    assert code == 0, err
    run = only_run(ledger, "shop:prices")
    assert run.status is RunStatus.PARTIAL
    assert run.error_message == "page 2: HTTP 502"
    assert run.items["error"] == 1


def test_on_partial_carries_holds_or_forgets_failed_items(ledger: Ledger, db_url: str) -> None:
    script = 'echo "::runtrack item sku-9 error"'
    # Default (carry): the failed item is owed to the job's next run.
    assert finish(runtrack_exec(db_url, "shop:carry", "--", "sh", "-c", script))[0] == 0
    assert [item.key for item in ledger.carried("shop:carry").items] == ["sku-9"]
    # advance: the run is partial too, and nothing is owed.
    code, _, err = finish(
        runtrack_exec(db_url, "shop:advance", "--on-partial", "advance", "--", "sh", "-c", script)
    )
    assert code == 0, err
    assert only_run(ledger, "shop:advance").status is RunStatus.PARTIAL
    assert ledger.carried("shop:advance").items == ()
    assert ledger.watermark("shop:advance") is not None  # moved past the window
    # hold: nothing owed, and the watermark stays where it was (none yet).
    code, _, err = finish(
        runtrack_exec(db_url, "shop:hold", "--on-partial", "hold", "--", "sh", "-c", script)
    )
    assert code == 0, err
    assert ledger.carried("shop:hold").items == ()
    assert ledger.watermark("shop:hold") is None
    # A value that is none of them is a usage error; nothing runs.
    code, _, err = finish(
        runtrack_exec(db_url, "shop:bad", "--on-partial", "keep", "--", "sh", "-c", script)
    )
    assert code == 2 and "carry" in err and "advance" in err
    assert ledger.list_runs(job="shop:bad").items == []


def test_malformed_lines_pass_through_with_one_warning_each(ledger: Ledger, db_url: str) -> None:
    script = textwrap.dedent(
        """
        echo "::runtrack cnt pages"
        echo "::runtrack count pages lots"
        echo "::runtrack count pages 2"
        echo "::runtrack progress 5"
        echo "::runtrack progress 3"
        """
    )
    code, out, err = finish(runtrack_exec(db_url, "board:search", "--", "sh", "-c", script))
    assert code == 0, err
    assert out == "::runtrack cnt pages\n::runtrack count pages lots\n"
    warnings = err.splitlines()
    assert len(warnings) == 3, err
    assert "unknown command 'cnt'" in warnings[0]
    assert "is not a number" in warnings[1]
    assert "went back from 5 to 3" in warnings[2]
    run = only_run(ledger, "board:search")
    assert run.status is RunStatus.SUCCESS
    assert (run.counters, run.progress_done) == ({"pages": 2}, 5)


def test_stdin_is_inherited_and_output_passes_promptly_and_unchanged(
    ledger: Ledger, db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    child = textwrap.dedent(
        """
        import sys
        out = sys.stdout.buffer
        out.write(b"name? "); out.flush()
        name = sys.stdin.readline().strip()
        out.write(bytes(range(256)) * 40 + b"\\n::runtrack count greeted\\n"); out.flush()
        out.write(("hello " + name).encode())
        """
    )
    proc = runtrack_exec(db_url, "greeter", "--", PY, "-c", child)
    procs.append(proc)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.read(6) == b"name? "  # before any newline, while the child waits
    out, err = proc.communicate(b"ada\n", timeout=60)
    assert proc.returncode == 0, err
    assert out == bytes(range(256)) * 40 + b"\nhello ada"
    assert only_run(ledger, "greeter").counters == {"greeted": 1}


def test_the_run_heartbeats_and_flushes_reports_while_the_command_runs(
    ledger: Ledger, db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    script = 'echo "::runtrack count pages 5"; echo "::runtrack progress 1 4"; echo ready; read go'
    proc = runtrack_exec(db_url, "long", "--", "sh", "-c", script)
    procs.append(proc)
    assert read_line(proc) == b"ready\n"
    run = wait_running(ledger, "long")
    deadline = time.monotonic() + 20
    seen = ledger.get_run(run.id)
    while time.monotonic() < deadline and not (
        seen.counters == {"pages": 5}
        and seen.heartbeat_at is not None
        and seen.started_at is not None
        and seen.heartbeat_at > seen.started_at
    ):
        time.sleep(0.05)
        seen = ledger.get_run(run.id)
    assert seen.status is RunStatus.RUNNING
    assert (seen.counters, seen.progress_done, seen.progress_total) == ({"pages": 5}, 1, 4)
    assert seen.heartbeat_at is not None and seen.started_at is not None
    assert seen.heartbeat_at > seen.started_at
    _, err = proc.communicate(b"go\n", timeout=60)
    assert proc.returncode == 0, err
    assert ledger.get_run(run.id).status is RunStatus.SUCCESS


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_are_forwarded_and_the_commands_handler_runs(
    ledger: Ledger, db_url: str, procs: list[subprocess.Popen[bytes]], sig: signal.Signals
) -> None:
    # Not at a terminal (stdin is a pipe): SIGINT is forwarded like SIGTERM.
    child = textwrap.dedent(
        """
        import signal, sys, time
        def stop(signum, frame):
            print("::runtrack count cleaned_up", flush=True)
            print("handled", signal.Signals(signum).name, flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    proc = runtrack_exec(db_url, "crawler", "--", PY, "-c", child)
    procs.append(proc)
    assert read_line(proc) == b"ready\n"
    proc.send_signal(sig)
    code, out, err = finish(proc)
    assert code == 0, (out, err)
    assert out == f"handled {sig.name}\n"
    run = only_run(ledger, "crawler")
    assert run.status is RunStatus.SUCCESS
    assert run.counters == {"cleaned_up": 1}
    assert run.notes == [f"runtrack exec received {sig.name} and passed it to the command"]


def test_a_cancel_from_another_process_stops_the_command_within_the_grace(
    ledger: Ledger, db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    proc = runtrack_exec(db_url, "backfill", "--", "sleep", "600")
    procs.append(proc)
    run = wait_running(ledger, "backfill")
    asked = time.monotonic()
    ledger.cancel(run.id, by="ops", reason="wrong window")
    code, _, err = finish(proc)
    took = time.monotonic() - asked
    assert took < 3, f"took {took:.1f} s, the grace is 3 s"  # SIGTERM, not SIGKILL
    assert code == 128 + signal.SIGTERM
    assert "run" in err and "was cancelled (wrong window)" in err
    final = ledger.get_run(run.id)
    assert final.status is RunStatus.CANCELLED
    assert final.error_message is not None and "wrong window" in final.error_message
    assert final.error_details is not None and final.error_details["signal"] == "SIGTERM"


def test_a_cancel_while_the_command_floods_reports_ends_cancelled(
    ledger: Ledger, db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    # The cancel lands between the supervisor's check and a report's call on
    # the handle, which then raises: that is a stop, not a crash.
    script = 'while :; do echo "::runtrack count lines"; done'
    proc = runtrack_exec(db_url, "flood", "--", "sh", "-c", script)
    procs.append(proc)
    run = wait_running(ledger, "flood")
    ledger.cancel(run.id, reason="enough")
    code, _, err = finish(proc)
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    final = ledger.get_run(run.id)
    assert final.status is RunStatus.CANCELLED, final.error_message


def test_a_command_that_ignores_sigterm_gets_sigkill_after_the_grace(
    ledger: Ledger, db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    child = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(600)"
    )
    proc = runtrack_exec(
        db_url, "stubborn", "--", PY, "-c", child, env={"RUNTRACK_CANCEL_GRACE": "1"}
    )
    procs.append(proc)
    assert read_line(proc) == b"ready\n"
    run = wait_running(ledger, "stubborn")
    asked = time.monotonic()
    ledger.cancel(run.id)
    code, _, err = finish(proc)
    took = time.monotonic() - asked
    assert code == 128 + signal.SIGKILL, err
    assert 1 <= took < 10, took
    assert "sending SIGKILL" in err
    assert ledger.get_run(run.id).status is RunStatus.CANCELLED


def test_timeout_ends_failed_timeout(
    ledger: Ledger, db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    began = time.monotonic()
    proc = runtrack_exec(db_url, "slow", "--timeout", "1s", "--", "sleep", "600")
    procs.append(proc)
    code, _, err = finish(proc)
    assert code == 128 + signal.SIGTERM, err
    assert time.monotonic() - began < 30
    run = only_run(ledger, "slow")
    assert run.status is RunStatus.FAILED
    assert (run.error_type, run.error_message) == ("timeout", "timed out after 1s")


def test_a_busy_job_exits_75_without_running_the_command(
    ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    holder = ledger.start_run("board:search")
    marker = tmp_path / "ran"
    code, out, err = finish(runtrack_exec(db_url, "board:search", "--", "touch", str(marker)))
    assert code == 75
    assert out == "" and len(err.splitlines()) == 1 and "is busy" in err
    assert not marker.exists()
    # With room for two, it runs.
    code, _, err = finish(
        runtrack_exec(db_url, "board:search", "--concurrency", "2", "--", "touch", str(marker))
    )
    assert code == 0, err
    assert marker.exists()
    ledger.finish_run(holder)


def test_a_sigkilled_exec_is_reaped(
    ledger: Ledger, db_url: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    pidfile = tmp_path / "child.pid"
    proc = runtrack_exec(db_url, "doomed", "--", "sh", "-c", f"echo $$ > {pidfile}; exec sleep 600")
    procs.append(proc)
    run = wait_running(ledger, "doomed")
    while not pidfile.exists() or not pidfile.read_text().strip():
        time.sleep(0.05)
    child = int(pidfile.read_text())
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        time.sleep(1.2)  # > stale_after below: no heartbeat since the kill
        assert run.id in ledger.reap(stale_after=1)
    finally:
        os.kill(child, signal.SIGKILL)  # the orphaned command
    final = ledger.get_run(run.id)
    assert (final.status, final.error_type) == (RunStatus.FAILED, "heartbeat_timeout")


def test_a_missing_command_exits_127_and_fails_the_run(ledger: Ledger, db_url: str) -> None:
    code, _, err = finish(runtrack_exec(db_url, "typo", "--", "no-such-command-xyz"))
    assert code == 127
    assert "cannot run 'no-such-command-xyz'" in err
    run = only_run(ledger, "typo")
    assert (run.status, run.error_type) == (RunStatus.FAILED, "exit_code")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--timeout", "10", "--", "true"], "has no unit"),
        (["--timeout", "soon", "--", "true"], "has no unit"),
        (["--param", "novalue", "--", "true"], "is not KEY=VALUE"),
        (["--concurrency", "0", "--", "true"], "concurrency"),
        ([], "Missing argument '-- COMMAND [ARGS]...'"),
    ],
)
def test_usage_errors_exit_2(db_url: str, args: list[str], problem: str) -> None:
    code, _, err = finish(runtrack_exec(db_url, "job", *args))
    assert code == 2
    assert problem in err


def test_a_shell_script_reports_counters(ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "sync.sh"
    script.write_text(
        textwrap.dedent(
            """\
            #!/bin/sh
            set -eu
            for page in 1 2 3; do
              echo "fetching page $page"
              echo "::runtrack count pages_fetched"
              echo "::runtrack count offers_fetched 20"
            done
            """
        )
    )
    script.chmod(0o755)
    code, out, err = finish(runtrack_exec(db_url, "board:sh", "--", str(script)))
    assert code == 0, err
    assert out == "fetching page 1\nfetching page 2\nfetching page 3\n"
    run = only_run(ledger, "board:sh")
    assert run.status is RunStatus.SUCCESS
    assert run.counters == {"pages_fetched": 3, "offers_fetched": 60}


def test_a_nodejs_script_reports_counters(ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("CI=true requires node on PATH")
        pytest.skip("node is not installed")
    script = tmp_path / "sync.js"
    script.write_text(
        textwrap.dedent(
            """\
            const report = (line) => process.stdout.write(`::runtrack ${line}\\n`);
            const previous = process.env.RUNTRACK_CHECKPOINT;
            console.log(`run ${process.env.RUNTRACK_RUN_ID}, checkpoint ${previous || "none"}`);
            for (let page = 1; page <= 4; page++) {
              report("count pages_fetched");
              report(`item page-${page} ${page === 3 ? "error" : "success"}`);
            }
            report("error page 3 answered 502");
            report(`checkpoint ${JSON.stringify({ v: 1, page: 4 })}`);
            """
        )
    )
    code, out, err = finish(runtrack_exec(db_url, "board:node", "--", node, str(script)))
    assert code == 0, err
    run = only_run(ledger, "board:node")
    assert out == f"run {run.id}, checkpoint none\n"
    assert run.status is RunStatus.PARTIAL
    assert run.counters == {"pages_fetched": 4}
    assert run.items == {"success": 3, "not_found": 0, "skipped": 0, "error": 1}
    assert run.checkpoint == {"v": 1, "page": 4}
    assert json.loads(json.dumps(run.checkpoint)) == {"v": 1, "page": 4}
