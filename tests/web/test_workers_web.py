"""Workers and schedules on the web and the CLI (issue 17), on every
database: ``runtrack workers --json`` (a real process) and ``GET /api/workers``
(real HTTP) are the same records; the Workers page lists live and gone
workers with what each runs; a job shows its schedule and next due time on
its zone's clock, in the API, the CLI and its page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi.testclient import TestClient
from web_seed import AUTH, TOKEN, live_server
from workers_seed import DEAD, HOURLY, LIVE, STOPPED, ZONED, seed_workers

from runtrack import Ledger
from runtrack.api import create_app
from runtrack.config import Settings


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RUNTRACK_DATABASE_URL=db_url, COLUMNS="250")
    done = subprocess.run(
        [sys.executable, "-m", "runtrack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_cli_and_api_list_the_same_workers(ledger: Ledger, db_url: str) -> None:
    with seed_workers(db_url, ledger.now()) as seeded:
        app = create_app(ledger, Settings(api_token=TOKEN).validated())
        with live_server(app) as base, httpx.Client(base_url=base, headers=AUTH) as http:
            answer = http.get("/api/workers")
            assert answer.status_code == 200, answer.text
            from_cli: Any = json.loads(_cli(db_url, "workers", "--json").stdout)
            assert from_cli == answer.json()
            assert http.get("/api/workers", params={"recnt": "1d"}).status_code == 400
            assert http.get("/api/workers", params={"recent": "1y2"}).status_code == 422

        states = {w["id"]: w["state"] for w in from_cli["data"]}
        assert states == {LIVE: "live", DEAD: "dead", STOPPED: "stopped"}
        live = next(w for w in from_cli["data"] if w["id"] == LIVE)
        assert [r["run_id"] for r in live["running"]] == [seeded.run_id]
        assert live["running"][0]["job"] == HOURLY
        assert live["jobs"] == [
            {"key": ZONED, "schedule": "cron '30 2 * * *' Europe/Madrid", "tz": "Europe/Madrid"},
            {"key": HOURLY, "schedule": "every 1h", "tz": None},
        ]
        assert set(live) >= {"host", "pid", "version", "concurrency", "last_seen_at"}

        table = _cli(db_url, "workers").stdout
        assert LIVE in table and "dead" in table and f"#{seeded.run_id} {HOURLY}" in table


def test_a_job_shows_its_schedule_and_next_due_time_in_its_zone(
    ledger: Ledger, db_url: str
) -> None:
    with seed_workers(db_url, ledger.now()), TestClient(create_app(ledger)) as client:
        job = client.get(f"/api/jobs/{ZONED}").json()
        assert job["schedule"] == "cron '30 2 * * *' Europe/Madrid"
        assert job["schedule_tz"] == "Europe/Madrid"
        due = datetime.fromisoformat(job["next_due_at"].replace("Z", "+00:00"))
        local = due.astimezone(ZoneInfo("Europe/Madrid"))
        assert (local.hour, local.minute) == (2, 30)
        assert job["next_due_local"] == local.isoformat()

        page = client.get(f"/jobs/{ZONED}")
        assert page.status_code == 200
        assert "cron &#39;30 2 * * *&#39; Europe/Madrid" in page.text
        assert local.strftime(">%Y-%m-%d 02:30:00 Europe/Madrid</span>") in page.text
        hourly = client.get(f"/jobs/{HOURLY}").text
        assert "every 1h" in hourly
        due = re.search(r'<span class="next-due" title="([^"]+)">([^<]+)</span>', hourly)
        assert due is not None and due.group(1) == due.group(2)  # its UTC time, once
        assert due.group(2).endswith(" UTC")

        workers = client.get("/workers")
        assert workers.status_code == 200
        assert 'href="/workers" aria-current="page"' in workers.text
        for worker in (LIVE, DEAD, STOPPED):
            assert f'id="worker-{worker}"' in workers.text
        assert workers.text.index(LIVE) < workers.text.index(DEAD)  # live first
        assert 'href="/workers"' in client.get("/").text  # in the nav of every page

    listing = _cli(db_url, "jobs", "--wide").stdout
    assert "cron '30 2 * * *' Europe/Madrid" in listing
    assert local.strftime("%Y-%m-%d 02:30:00 %Z") in listing
