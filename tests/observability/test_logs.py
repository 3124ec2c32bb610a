"""Structured logs: every runtrack record about a run carries run_id, job,
provider and status; JSON lines show them; the library installs no handler."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from runtrack import LeaseLost, Ledger, RunStatus
from runtrack.logs import RUN_FIELDS, configure_logging


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    undo = configure_logging("json", logging.DEBUG, stream=stream)
    yield stream
    undo()


def test_json_log_lines_carry_the_run_fields(ledger: Ledger, json_log: io.StringIO) -> None:
    with ledger.run("acme:ok", provider="acme") as ok:
        ok.count("offers", 2)
    with pytest.raises(ValueError, match="boom"), ledger.run("acme:fail", provider="acme") as bad:
        raise ValueError("boom")
    with ledger.run("plain:stop") as stopped:
        ledger.cancel(stopped.id, by="ops")
        stopped.count("never")

    ours = [line for line in json_lines(json_log.getvalue()) if line["logger"] == "runtrack"]
    ended = {line["run_id"]: line for line in ours if " ended " in line["message"]}
    assert {run_id: (e["job"], e["provider"], e["status"]) for run_id, e in ended.items()} == {
        ok.id: ("acme:ok", "acme", "success"),
        bad.id: ("acme:fail", "acme", "failed"),
        stopped.id: ("plain:stop", None, "cancelled"),
    }
    for line in ours:
        assert list(line)[:4] == ["time", "level", "logger", "message"]
        assert line["time"].endswith("Z")
        if "run_id" in line:
            assert list(line)[4:8] == list(RUN_FIELDS)


def test_every_record_about_a_run_has_the_fields(
    ledger: Ledger, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Starts, ends, cancels, reaps, lost leases and a failing listener."""
    caplog.set_level(logging.DEBUG, logger="runtrack")
    with ledger.run("acme:ok", provider="acme"):
        pass
    with ledger.run("acme:partial", provider="acme") as run:
        run.error("one page failed")
    pending = ledger.create_run("acme:later", provider="acme")
    ledger.cancel(pending.id)
    dead = Ledger(db_url, heartbeat_interval=60)  # no heartbeat within the test
    with dead, pytest.raises(RuntimeError, match="crash"), dead.run("acme:slow") as slow:
        time.sleep(0.3)
        assert ledger.reap(stale_after=0.2) == [slow.id]
        raise RuntimeError("crash")  # its finalization then finds the run taken away
    worker = Ledger(db_url, heartbeat_interval=0.05)
    with worker, pytest.raises(LeaseLost), worker.run("acme:taken", provider="acme") as taken:
        ledger.finish_run(taken.id, "failed", error="taken over")
        for _ in range(250):  # the next heartbeat notices; the next count raises
            taken.count("offers")
            time.sleep(0.02)
    ledger.events.add(_Broken())
    with ledger.run("acme:watched", provider="acme"):
        pass

    about_runs = [r for r in caplog.records if hasattr(r, "run_id")]
    reaper = [r for r in about_runs if r.name == "runtrack.reaper"]
    others = [r for r in about_runs if r.name != "runtrack.reaper"]
    messages = {r.getMessage() for r in others}
    assert any("cancelled before it started" in m for m in messages)
    assert any("no longer owned by this worker" in m for m in messages)  # the crashed one
    assert any(f"run {taken.id} lost its lease" in m for m in messages)
    assert any("run listener" in m and "failed on run_started" in m for m in messages)
    for record in others:
        fields = {name: getattr(record, name, "missing") for name in RUN_FIELDS}
        assert "missing" not in fields.values(), (record.getMessage(), fields)
        assert fields["status"] in set(RunStatus), (record.getMessage(), fields)
    # The reaper's scan does not read job and provider; id and status it has.
    assert [(r.run_id, r.status) for r in reaper] == [(slow.id, "failed")]


class _Broken:
    def run_started(self, run: object) -> None:
        raise RuntimeError("listener bug")

    def run_finished(self, run: object) -> None:
        raise RuntimeError("listener bug")

    def close(self) -> None:
        pass


def test_rich_lines_show_the_run_fields(ledger: Ledger) -> None:
    stream = io.StringIO()
    undo = configure_logging("rich", logging.INFO, stream=stream)
    try:
        with ledger.run("acme:ok", provider="acme") as run:
            pass
    finally:
        undo()
    text = " ".join(stream.getvalue().split())  # Rich wraps long lines
    assert f"run {run.id} of acme:ok ended success" in text
    assert f"run_id={run.id} job=acme:ok provider=acme status=success" in text


def test_the_library_installs_no_handler_and_prints_nothing() -> None:
    script = (
        "import logging, runtrack\n"
        "logging.getLogger('runtrack.ledger').warning('not for stderr')\n"
        "print([type(h).__name__ for h in logging.getLogger('runtrack').handlers],"
        " logging.getLogger().handlers)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "['NullHandler'] []"
    assert done.stderr == ""  # without the NullHandler, Python's last resort prints it
