"""Every command once as a real process (``python -m runtrack``), on SQLite:
the console entry point, exit codes and stream separation as a shell sees them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_helpers import Seeded, free_port, invoke_process, seed, stop, wait_for_http

from runtrack import Ledger, RunStatus


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A new, migrated SQLite ledger."""
    created = f"sqlite:///{tmp_path}/ledger.db"
    Ledger(created).close()
    return created


@pytest.fixture
def seeded_url(url: str) -> Iterator[tuple[str, Seeded]]:
    with Ledger(url, heartbeat_interval=0.05) as ledger:
        yield url, seed(ledger)


def test_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    out = invoke_process(url, "migrate", "--json")
    assert out.code == 0, out.stderr
    assert out.json()["changed"] is True


def test_runs_writes_pure_json_to_stdout(seeded_url: tuple[str, Seeded]) -> None:
    url, ids = seeded_url
    out = invoke_process(url, "--log-format", "json", "runs", "--json", "--limit", "2")
    assert out.code == 0, out.stderr
    data = json.loads(out.stdout)
    assert [r["id"] for r in data["data"]] == [ids.pending, ids.failed]


def test_show(seeded_url: tuple[str, Seeded]) -> None:
    url, ids = seeded_url
    out = invoke_process(url, "show", str(ids.success), "--json")
    assert out.code == 0, out.stderr
    assert out.json()["groups"] == {"found": 1, "missing": 1}
    groups = invoke_process(url, "groups", str(ids.success), "--json")
    assert groups.json()["data"][0]["found_in"] == ["amazon"]


def test_cancel(seeded_url: tuple[str, Seeded]) -> None:
    url, ids = seeded_url
    out = invoke_process(url, "cancel", str(ids.pending), "--reason", "dup", "--json")
    assert out.code == 0, out.stderr
    assert out.json()["status"] == "cancelled"


def test_jobs_and_providers(seeded_url: tuple[str, Seeded]) -> None:
    url, _ = seeded_url
    jobs = invoke_process(url, "jobs", "--json")
    assert jobs.code == 0 and len(jobs.json()["data"]) == 3
    providers = invoke_process(url, "providers", "--json")
    assert providers.code == 0
    assert [p["name"] for p in providers.json()["data"]] == [
        "crm",
        "jobboard",
        "pricewatch",
    ]


def test_pause_and_resume(url: str) -> None:
    paused = invoke_process(
        url, "pause", "geocoder", "--for", "15m", "--reason", "HTTP 429", "--new"
    )
    assert paused.code == 0, paused.stderr
    assert "geocoder paused until" in paused.stderr
    resumed = invoke_process(url, "resume", "geocoder", "--json")
    assert resumed.json() == {"provider": "geocoder", "resumed": True}


def test_reap_and_prune(seeded_url: tuple[str, Seeded]) -> None:
    url, _ = seeded_url
    reaped = invoke_process(url, "reap", "--stale-after", "1h", "--json")
    assert reaped.code == 0 and reaped.json() == {"reaped": []}
    pruned = invoke_process(url, "prune", "--older-than", "90d", "--dry-run", "--json")
    assert pruned.code == 0 and pruned.json()["runs"] == 0


def test_bad_arguments_exit_2_with_one_line(url: str) -> None:
    out = invoke_process(url, "runs", "--status", "nope")
    assert out.code == 2
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""


def test_the_console_script_is_installed(url: str) -> None:
    script = Path(sys.executable).with_name("runtrack")
    assert script.exists(), "pip install -e . installs the runtrack console script"
    done = subprocess.run(
        [str(script), "--database-url", url, "runs", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and json.loads(done.stdout) == {"data": [], "next_cursor": None}


def test_serve_answers_the_api_and_the_dashboard(seeded_url: tuple[str, Seeded]) -> None:
    url, ids = seeded_url
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "runtrack", "serve", "--port", str(port)],
        env=dict(os.environ, RUNTRACK_DATABASE_URL=url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        runs = json.loads(wait_for_http(f"http://127.0.0.1:{port}/api/runs", server))
        page = wait_for_http(f"http://127.0.0.1:{port}/", server)
    finally:
        code, err = stop(server)
    assert ids.success in [run["id"] for run in runs["data"]]
    assert b"board:search" in page
    assert code == 0, err
    assert f"http://localhost:{port}/" in err


def test_serve_with_workers_answers_from_each_process(seeded_url: tuple[str, Seeded]) -> None:
    """``--workers 2``: two server processes on one port, each with its own
    ledger from ``--database-url``; SIGTERM stops them all (exit 0)."""
    url, ids = seeded_url
    port = free_port()
    command = ["--database-url", url, "serve", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(
        [sys.executable, "-m", "runtrack", *command],
        env={k: v for k, v in os.environ.items() if k != "RUNTRACK_DATABASE_URL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        runs = json.loads(wait_for_http(f"http://127.0.0.1:{port}/api/runs", server))
        detail = json.loads(wait_for_http(f"http://127.0.0.1:{port}/api/runs/{ids.failed}", server))
    finally:
        code, err = stop(server)
    assert ids.success in [run["id"] for run in runs["data"]]
    assert detail["status"] == "failed"
    assert code == 0, err
    assert err.count("Application startup complete") == 2, err
    assert '"GET /api/runs HTTP/1.1"' in err  # the access log, from a worker


def test_serve_without_the_access_log(seeded_url: tuple[str, Seeded]) -> None:
    url, _ = seeded_url
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "runtrack", "serve", "--port", str(port), "--no-access-log"],
        env=dict(os.environ, RUNTRACK_DATABASE_URL=url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/runs", server)
    finally:
        code, err = stop(server)
    assert code == 0, err
    assert "Application startup complete" in err
    assert "GET /api/runs" not in err


RUNNER_MODULE = """
from runtrack import Ledger
from runtrack.runner import Runner

ledger = Ledger(heartbeat_interval=0.1)
runner = Runner(ledger, jitter=0, grace=1)


@runner.job("feeds:poll", provider="feeds", every="1h")
def poll(run):
    run.count("polled")
"""


def test_worker_runs_the_users_runner_until_sigterm(tmp_path: Path, url: str) -> None:
    (tmp_path / "myjobs.py").write_text(textwrap.dedent(RUNNER_MODULE))
    worker = subprocess.Popen(
        [sys.executable, "-m", "runtrack", "--database-url", url, "worker", "myjobs:runner"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "RUNTRACK_DATABASE_URL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Ledger(url, heartbeat_interval=0.1) as ledger:
            deadline = time.monotonic() + 30
            while not ledger.list_runs(job="feeds:poll").items:
                assert worker.poll() is None, worker.communicate()
                assert time.monotonic() < deadline, "the worker ran nothing"
                time.sleep(0.1)
            record = ledger.list_runs(job="feeds:poll").items[0]
    finally:
        code, err = stop(worker)
    assert code == 0, err
    assert record.counters == {"polled": 1} or record.status is RunStatus.RUNNING


def _sign_in(port: int, **headers: str) -> tuple[str, httpx.Headers]:
    """Sign in with the API token; the Set-Cookie header and the response headers."""
    response = httpx.post(
        f"http://127.0.0.1:{port}/session",
        data={"token": SERVE_TOKEN, "next": "/"},
        headers=headers,
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:300]
    return response.headers["set-cookie"], response.headers


SERVE_TOKEN = "serve-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("options", "https_cookie", "http_cookie"),
    [
        # The proxy on 127.0.0.1 is trusted: its X-Forwarded-Proto makes the request HTTPS.
        (["--forwarded-allow-ips", "127.0.0.1"], True, False),
        # Another proxy address: a client's X-Forwarded-Proto is ignored.
        (["--forwarded-allow-ips", "10.9.8.7"], False, False),
        # Forced, in every worker process.
        (["--forwarded-allow-ips", "10.9.8.7", "--secure-cookies", "--workers", "2"], True, True),
    ],
)
def test_serve_behind_a_proxy(
    seeded_url: tuple[str, Seeded], options: list[str], https_cookie: bool, http_cookie: bool
) -> None:
    url, _ = seeded_url
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "runtrack", "serve", "--port", str(port), *options],
        env=dict(os.environ, RUNTRACK_DATABASE_URL=url, RUNTRACK_API_TOKEN=SERVE_TOKEN),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/health", server)
        api = httpx.get(f"http://127.0.0.1:{port}/api/runs")
        proxied, headers = _sign_in(port, **{"X-Forwarded-Proto": "https"})
        direct, _ = _sign_in(port)
    finally:
        code, err = stop(server)
    assert code == 0, err
    for response_headers in (api.headers, headers):
        assert "server" not in response_headers  # no "server: uvicorn"
        assert response_headers["x-content-type-options"] == "nosniff"
    for cookie, secure in ((proxied, https_cookie), (direct, http_cookie)):
        name = "__Host-runtrack_session" if secure else "runtrack_session"
        assert cookie.startswith(f"{name}="), cookie
        assert ("; secure" in cookie.lower()) is secure, cookie
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
