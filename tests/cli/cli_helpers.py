"""Helpers of the CLI tests: invoke ``runtrack`` in-process (Typer's
CliRunner) or as a real process, and seed a ledger with runs in every state."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from typer.testing import CliRunner, Result

from runtrack import Ledger, RunStatus
from runtrack.cli import app


@dataclass(frozen=True)
class Outcome:
    """What a command did: exit code and its two streams."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


Invoke = Callable[..., Outcome]


def invoke_in_process(db_url: str, *args: str, env: dict[str, str] | None = None) -> Outcome:
    result: Result = CliRunner().invoke(
        app, ["--database-url", db_url, *args], env={"COLUMNS": "200", **(env or {})}
    )
    return Outcome(result.exit_code, result.stdout, result.stderr)


def invoke_process(db_url: str, *args: str, timeout: float = 60, cwd: str | None = None) -> Outcome:
    """``python -m runtrack ...`` in a real process."""
    env = dict(os.environ, RUNTRACK_DATABASE_URL=db_url, COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "runtrack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Seeded:
    """Ids of the runs :func:`seed` made."""

    success: int
    partial: int
    failed: int
    pending: int


def seed(ledger: Ledger) -> Seeded:
    """A few runs over two providers: success with items in groups, partial,
    failed, and a pending one."""
    with ledger.run("shop:prices", provider="pricewatch", params={"q": "tv"}) as ok:
        ok.count("lookups", 4)
        ok.item("sku-1", "success", group="sku-1", source="amazon", data={"price": 9.5})
        ok.item("sku-1", "not_found", group="sku-1", source="ebay")
        ok.item("sku-2", "not_found", group="sku-2", source="amazon")
        ok.item("sku-2", "not_found", group="sku-2", source="ebay")
    with ledger.run("board:search", provider="jobboard", triggered_by="alice") as partial:
        partial.count("pages_fetched", 3)
        partial.error("page 2: HTTP 502")
    try:
        with ledger.run("board:search", provider="jobboard") as failed:
            raise RuntimeError("schema changed")
    except RuntimeError:
        pass
    pending = ledger.create_run("crm:contacts", provider="crm")
    assert ledger.get_run(pending.id).status is RunStatus.PENDING
    return Seeded(ok.id, partial.id, failed.id, pending.id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[str], timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bytes(response.read())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, err
