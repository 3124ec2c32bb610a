"""``runtrack serve`` checks expectations by itself (issue 18): with no
runner and no ``runtrack check``, two real server processes on one database
open a late job's incident once, deliver its webhook to a real local
receiver, resolve it once after a success, and stop cleanly on SIGTERM; with
a runner process checking as well, still once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from receivers import Webhook, free_port

from runtrack import Ledger
from runtrack.alerts import IncidentKind

SERVERS = 2
RUNNER = Path(__file__).with_name("alert_worker.py")


def _serve(db_url: str, hook: Webhook, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RUNTRACK_DATABASE_URL"}
    env.update(RUNTRACK_NOTIFY=hook.url, RUNTRACK_PUBLIC_URL="http://dash.test")
    command = [sys.executable, "-m", "runtrack", "--database-url", db_url, "serve"]
    command += ["--port", str(port), "--check-every", "0.5", "--no-access-log"]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out), port


def _wait_until_serving(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"the server did not answer within 60 s: {log.read_text()}")


def _runner(db_url: str, hook: Webhook, log: Path) -> subprocess.Popen[bytes]:
    """A runner process (an idle hourly job) whose maintenance checks every 0.5 s."""
    env = dict(os.environ, RUNTRACK_NOTIFY=hook.url, RUNTRACK_PUBLIC_URL="http://dash.test")
    with log.open("wb") as out:
        command = [sys.executable, str(RUNNER), db_url, "0", "0.5"]
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


@pytest.mark.parametrize("with_runner", [False, True], ids=["servers", "servers+runner"])
def test_serve_opens_and_resolves_a_late_jobs_incident_once_with_its_webhook(
    db_url: str, webhook: Webhook, tmp_path: Path, with_runner: bool
) -> None:
    with Ledger(db_url) as ledger:
        ledger.expect("alerts:served", success_within="5s")
        logs = [tmp_path / f"serve-{n}.log" for n in range(SERVERS)]
        servers = [_serve(db_url, webhook, log) for log in logs]
        runner = _runner(db_url, webhook, tmp_path / "runner.log") if with_runner else None
        try:
            for (server, port), log in zip(servers, logs, strict=True):
                _wait_until_serving(server, port, log)
            webhook.wait_for("opened", timeout=30)
            (incident,) = ledger.incidents("alerts:served", open_only=True)
            assert incident.kind is IncidentKind.LATE
            with ledger.run("alerts:served"):
                pass
            ledger.expect("alerts:served", success_within="1h")  # not late again meanwhile
            webhook.wait_for("resolved", timeout=30)
            time.sleep(1.5)  # three more check intervals: nothing opens or sends again
        finally:
            if runner is not None:
                runner.kill()
                runner.wait()
            for server, _ in servers:
                server.send_signal(signal.SIGTERM)
            codes = [server.wait(timeout=30) for server, _ in servers]
        output = "\n".join(log.read_text() for log in tmp_path.glob("*.log"))
        assert codes == [0] * SERVERS, output
        assert "Traceback" not in output and "check failed" not in output, output
        opened, resolved = webhook.events("opened"), webhook.events("resolved")
        keys = [(e["idempotency_key"], e["incident"]["id"]) for e in webhook.events()]
        assert len(opened) == 1 and len(resolved) == 1, keys
        assert opened[0]["incident"]["id"] == resolved[0]["incident"]["id"] == incident.id
        assert ledger.incidents(open_only=True) == []
