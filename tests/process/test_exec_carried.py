"""``runtrack exec`` and carrying (issue 23): the command reads what its job
owes from the file ``RUNTRACK_CARRIED`` names and reports the slices it could
not fetch with ``::runtrack slice START END REASON``, through the console
script and a real child process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from runtrack import CarryState, Ledger, RunStatus

RUNTRACK = Path(sys.executable).with_name("runtrack")
PY = sys.executable
START, END = "2030-01-01T00:00:00Z", "2030-01-01T01:00:00Z"

#: Reads the file it is handed, prints what it owes, resolves the items and
#: fails the slices again (or fetches them, with "fetch" as its argument).
WORKER = textwrap.dedent(
    """
    import json, os, sys
    path = os.environ["RUNTRACK_CARRIED"]
    print("file", path != "" and os.path.exists(path), flush=True)
    owed = json.load(open(path)) if path else {"items": [], "slices": []}
    for item in owed["items"]:
        print("owed item", item["key"], item["attempts"], item["last_error"])
        print("::runtrack item", item["key"], "success")
    for piece in owed["slices"]:
        print("owed slice", piece["start"], piece["end"], piece["attempts"], piece["reason"])
        if sys.argv[1:] != ["fetch"]:
            print("::runtrack slice", piece["start"], piece["end"], "HTTP 503 again")
    print("path", path, flush=True)
    """
)


def exec_command(db_url: str, job: str, *argv: str) -> tuple[int, str, str]:
    command = [str(RUNTRACK)] if RUNTRACK.exists() else [PY, "-m", "runtrack"]
    env = {**os.environ, "RUNTRACK_DATABASE_URL": db_url, "RUNTRACK_HEARTBEAT_INTERVAL": "0.1"}
    done = subprocess.run(
        [*command, "exec", job, "--", *argv], env=env, capture_output=True, timeout=60
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_a_command_sees_what_it_owes_and_reports_failed_slices(ledger: Ledger, db_url: str) -> None:
    job = "feed:carried"
    first = f'echo "::runtrack item sku-1 error"; echo "::runtrack slice {START} {END} HTTP 502"'
    code, out, err = exec_command(db_url, job, "sh", "-c", first)
    assert (code, out) == (0, ""), err
    (run,) = ledger.list_runs(job=job).items
    assert run.status is RunStatus.PARTIAL
    owed = ledger.carried(job)
    assert [i.key for i in owed.items] == ["sku-1"]
    (piece,) = owed.slices
    assert (piece.start, piece.end, piece.reason) == (
        datetime(2030, 1, 1, tzinfo=UTC),
        datetime(2030, 1, 1, 1, tzinfo=UTC),
        "HTTP 502",
    )

    # The next command is handed both: it resolves the item, fails the slice again.
    code, out, err = exec_command(db_url, job, PY, "-c", WORKER)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:3] == [
        "file True",
        "owed item sku-1 1 None",
        f"owed slice {START} {END} 1 HTTP 502",
    ]
    assert not Path(lines[-1].split(" ", 1)[1]).exists()  # removed once the command exited
    owed = ledger.carried(job)
    assert owed.items == ()
    (piece,) = owed.slices
    assert (piece.attempts, piece.reason, piece.state) == (2, "HTTP 503 again", CarryState.OWED)
    assert ledger.list_runs(job=job).items[0].status is RunStatus.PARTIAL

    # A command that fetches it: the slice is resolved.
    code, out, err = exec_command(db_url, job, PY, "-c", WORKER, "fetch")
    assert code == 0, err
    assert f"owed slice {START} {END} 2 HTTP 503 again" in out.splitlines()
    assert not ledger.carried(job)
    assert ledger.list_runs(job=job).items[0].status is RunStatus.SUCCESS

    # Nothing owed: the variable is empty.
    code, out, err = exec_command(db_url, job, PY, "-c", WORKER)
    assert (code, out.splitlines()) == (0, ["file False", "path "]), err


def test_a_command_that_ignores_what_it_owes_still_counts_attempts(
    ledger: Ledger, db_url: str
) -> None:
    job = "feed:ignores"
    code, _, err = exec_command(db_url, job, "sh", "-c", 'echo "::runtrack item sku-7 error"')
    assert code == 0, err
    for _ in range(4):
        assert exec_command(db_url, job, "true")[0] == 0
    (item,) = ledger.carried(job).items
    assert (item.key, item.attempts, item.state) == ("sku-7", 5, CarryState.GIVEN_UP)


def test_a_malformed_slice_passes_through_with_a_warning(ledger: Ledger, db_url: str) -> None:
    script = f'echo "::runtrack slice yesterday {END}"; echo "::runtrack slice {END} {START}"'
    code, out, err = exec_command(db_url, "feed:bad-slice", "sh", "-c", script)
    assert code == 0, err
    assert out == f"::runtrack slice yesterday {END}\n::runtrack slice {END} {START}\n"
    assert "ISO 8601" in err and "is not after start" in err
    assert not ledger.carried("feed:bad-slice")
