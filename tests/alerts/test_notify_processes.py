"""Told once (issue 18), with real processes: three runners check the same
database; a job expected to succeed within 2 s that never runs gets exactly
one ``opened`` notification within the check interval after its deadline,
and its next success exactly one ``resolved``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from receivers import Webhook

from runtrack import Ledger

WORKER = Path(__file__).with_name("alert_worker.py")
CHECK_EVERY = 1.0
RUNNERS = 3
#: Wall-clock slack for three interpreters on a loaded 2-core machine.
SLACK = 2.0


@pytest.fixture
def runners(
    db_url: str, webhook: Webhook, tmp_path: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = dict(os.environ, RUNTRACK_NOTIFY=webhook.url, RUNTRACK_PUBLIC_URL="http://dash.test")
    started = []
    for n in range(RUNNERS):
        with (tmp_path / f"runner-{n}.log").open("wb") as log:
            command = [sys.executable, str(WORKER), db_url, str(n), str(CHECK_EVERY)]
            started.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
    yield started
    for process in started:
        process.kill()
        process.wait()


def _logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(tmp_path.glob("runner-*.log")))


def _wait_until_running(ledger: Ledger, tmp_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (
            sum(1 for j in ledger.jobs() if j.key.startswith("alerts:idle") and j.last_run_id)
            == RUNNERS
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"the runners never ran:\n{_logs(tmp_path)}")


def test_three_runners_send_one_opened_then_one_resolved(
    db_url: str, webhook: Webhook, runners: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    with Ledger(db_url) as ledger:
        _wait_until_running(ledger, tmp_path)
        ledger.expect("shop:never", success_within="2s")
        deadline = time.monotonic() + 2.0
        arrived = webhook.wait_for("opened", timeout=30)
        assert arrived - deadline <= CHECK_EVERY + SLACK, _logs(tmp_path)
        time.sleep(2 * CHECK_EVERY)  # every runner checked again meanwhile
        (opened,) = webhook.events("opened")
        assert opened["incident"]["job"] == "shop:never"
        assert opened["link"] == "http://dash.test/jobs/shop:never"

        with ledger.run("shop:never"):
            pass
        webhook.wait_for("resolved", timeout=30)
        time.sleep(2 * CHECK_EVERY)
        # Counted for this incident: 2 s after that success the job is late
        # again, and a new incident (another id) may open meanwhile.
        first = opened["incident"]["id"]
        about = [e for e in webhook.events() if e["incident"]["id"] == first]
        assert [e["event"] for e in about] == ["opened", "resolved"], about
        assert len({e["idempotency_key"] for e in webhook.events()}) == len(webhook.received)
    assert all(p.poll() is None for p in runners), _logs(tmp_path)
