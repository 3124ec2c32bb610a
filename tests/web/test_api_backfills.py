"""Issue 17 on the API: create, list, read, resume and cancel backfills; the
POSTs need the API token; the JSON is the CLI's."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from typer.testing import CliRunner
from web_seed import AUTH, JOB_A, Seeded

from runtrack import Ledger
from runtrack.cli.root import app

BODY = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-11T00:00:00Z", "every": "1d"}


def test_a_backfill_through_its_life(client: TestClient, ledger: Ledger, seeded: Seeded) -> None:
    created = client.post(f"/api/jobs/{JOB_A}/backfills", json=BODY, headers=AUTH)
    assert created.status_code == 202, created.text
    shape = created.json()
    assert shape["windows"] == 10 and shape["progress"]["queued"] == 10
    assert shape["triggered_by"] == "api" and shape["state"] == "running"
    backfill_id = shape["id"]
    assert client.get(f"/api/backfills/{backfill_id}", headers=AUTH).json() == shape
    listed = client.get("/api/backfills", params={"job": JOB_A}, headers=AUTH).json()
    assert [b["id"] for b in listed["data"]] == [backfill_id]
    cancelled = client.post(f"/api/backfills/{backfill_id}/cancel", headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    resumed = client.post(f"/api/backfills/{backfill_id}/resume", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json()["progress"]["queued"] == 10
    assert ledger.get_backfill(backfill_id).windows == 10
    assert ledger.get_backfill(backfill_id).start == datetime(2026, 1, 1, tzinfo=UTC)


def test_backfill_requests_are_checked(client: TestClient, seeded: Seeded) -> None:
    assert client.post(f"/api/jobs/{JOB_A}/backfills", json=BODY).status_code == 401
    missing = client.post("/api/jobs/no:such/backfills", json=BODY, headers=AUTH)
    assert missing.status_code == 404
    inverted = dict(BODY, end="2025-12-31T00:00:00Z")
    assert (
        client.post(f"/api/jobs/{JOB_A}/backfills", json=inverted, headers=AUTH).status_code == 422
    )
    many = dict(BODY, every="1m")
    too_many = client.post(f"/api/jobs/{JOB_A}/backfills", json=many, headers=AUTH)
    assert too_many.status_code == 422 and "10,000" in too_many.text
    assert client.get("/api/backfills/424242", headers=AUTH).status_code == 404
    assert client.post("/api/backfills/424242/resume", headers=AUTH).status_code == 404
    assert client.get("/api/backfills", headers=AUTH).json() == {"data": []}


def test_the_cli_json_is_the_api_json(client: TestClient, ledger: Ledger, seeded: Seeded) -> None:
    created = client.post(f"/api/jobs/{JOB_A}/backfills", json=BODY, headers=AUTH).json()
    api = client.get("/api/backfills", headers=AUTH).json()
    cli = CliRunner().invoke(app, ["--database-url", ledger.url, "backfills", "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout) == api
    assert api["data"][0] == created
