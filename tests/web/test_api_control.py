"""POST routes: cancel, pause, resume; and who may call what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web_seed import AUTH, JOB_A, READ_TOKEN, TOKEN, Seeded, make_client

from runtrack import Ledger, RunCancelled, RunStatus


def db_state(ledger: Ledger) -> tuple[Any, ...]:
    """Everything a mutation could change: run statuses and cancel requests, pauses."""
    runs = [
        (r.id, r.status, r.cancel_requested_at, r.cancel_reason)
        for r in ledger.list_runs(limit=1000).items
    ]
    return tuple(runs), tuple(ledger.pauses())


MUTATIONS = [
    ("cancel running", lambda s: f"/api/runs/{s.running}/cancel", {"reason": "stop"}),
    ("cancel pending", lambda s: f"/api/runs/{s.pending}/cancel", None),
    ("pause", lambda s: "/api/providers/infojobs/pause", {"for": "15m", "reason": "429"}),
    ("resume", lambda s: "/api/providers/ebay/resume", None),
    ("trigger", lambda s: f"/api/jobs/{JOB_A}/trigger", {"params": {"q": 1}}),
    ("rerun", lambda s: f"/api/runs/{s.partial}/rerun", None),
]


BAD_CREDENTIALS = [
    {},
    {"Authorization": "Bearer wrong-token-0123456789"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {READ_TOKEN}"},
]


def test_mutations_without_the_token_are_401_and_change_nothing(
    ledger: Ledger, seeded: Seeded
) -> None:
    before = db_state(ledger)
    with make_client(ledger, api_token=TOKEN, read_token=READ_TOKEN) as client:
        for name, path, body in MUTATIONS:
            for headers in BAD_CREDENTIALS:
                response = client.post(path(seeded), json=body, headers=headers)
                assert response.status_code == 401, (name, headers)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert "wrong-token" not in response.text
                assert TOKEN not in response.text
    assert db_state(ledger) == before


def test_mutations_with_no_token_configured_are_403(ledger: Ledger, seeded: Seeded) -> None:
    before = db_state(ledger)
    with make_client(ledger) as client:
        for name, path, body in MUTATIONS:
            response = client.post(path(seeded), json=body, headers=AUTH)
            assert response.status_code == 403, name
            assert "RUNTRACK_API_TOKEN" in response.json()["detail"]
    assert db_state(ledger) == before


def test_reads_need_the_read_token_when_one_is_set(ledger: Ledger, seeded: Seeded) -> None:
    with make_client(ledger, api_token=TOKEN, read_token=READ_TOKEN) as client:
        assert client.get("/api/runs").status_code == 401
        assert client.get(f"/api/runs/{seeded.partial}").status_code == 401
        read = {"Authorization": f"Bearer {READ_TOKEN}"}
        assert client.get("/api/runs", headers=read).status_code == 200
        assert client.get("/api/jobs", headers=AUTH).status_code == 200  # the API token reads
        assert client.get("/api/health").status_code == 200  # probes send no token
    with make_client(ledger, api_token=TOKEN) as client:
        assert client.get("/api/runs").status_code == 200  # reads open by default


def test_cancel_a_pending_run(client: TestClient, ledger: Ledger, seeded: Seeded) -> None:
    response = client.post(
        f"/api/runs/{seeded.pending}/cancel", json={"reason": "not needed"}, headers=AUTH
    )
    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "cancelled"
    assert run["cancel"]["reason"] == "not needed"
    assert run["cancel"]["requested_by"] == "api"
    assert ledger.get_run(seeded.pending).status is RunStatus.CANCELLED


def test_cancel_a_running_run_stops_its_code(
    client: TestClient, ledger: Ledger, seeded: Seeded
) -> None:
    response = client.post(f"/api/runs/{seeded.running}/cancel", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert response.json()["cancel"]["requested_at"] is not None
    with pytest.raises(RunCancelled):
        seeded.handle.count("prices")
    again = client.post(f"/api/runs/{seeded.running}/cancel", headers=AUTH)
    assert again.status_code == 200  # asking twice is harmless


def test_cancel_conflicts_and_bad_requests(client: TestClient, seeded: Seeded) -> None:
    terminal = client.post(f"/api/runs/{seeded.partial}/cancel", headers=AUTH)
    assert terminal.status_code == 409
    assert terminal.json()["type"].endswith("run-not-cancellable")
    assert "partial" in terminal.json()["detail"]
    assert client.post("/api/runs/424242/cancel", headers=AUTH).status_code == 404
    extra = client.post(f"/api/runs/{seeded.pending}/cancel", json={"why": 1}, headers=AUTH)
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "why"
    wrong = client.post(f"/api/runs/{seeded.pending}/cancel", json={"reason": 5}, headers=AUTH)
    assert wrong.status_code == 422
    assert client.get(f"/api/runs/{seeded.pending}/cancel").status_code == 405


def test_pause_for_a_duration_then_resume(
    client: TestClient, ledger: Ledger, seeded: Seeded
) -> None:
    body = {"for": "15m", "reason": "HTTP 429"}
    paused = client.post("/api/providers/infojobs/pause", json=body, headers=AUTH)
    assert paused.status_code == 200, paused.text
    pause = ledger.paused("infojobs")
    assert pause is not None
    assert pause.until - pause.paused_at == timedelta(minutes=15)
    assert pause.reason == "HTTP 429"
    jobs = {j["key"]: j for j in client.get("/api/jobs").json()["data"]}
    assert jobs[JOB_A]["paused"]["reason"] == "HTTP 429"
    resumed = client.post("/api/providers/infojobs/resume", headers=AUTH)
    assert resumed.json() == {"provider": "infojobs", "resumed": True}
    assert ledger.paused("infojobs") is None
    again = client.post("/api/providers/infojobs/resume", headers=AUTH)
    assert again.json() == {"provider": "infojobs", "resumed": False}


def test_pause_until_a_time_with_a_slash_in_the_name(client: TestClient, ledger: Ledger) -> None:
    until = (ledger.now() + timedelta(hours=2)).isoformat()
    body = {"until": until, "reason": "maintenance window", "create": True}
    response = client.post("/api/providers/acme/eu/pause", json=body, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["provider"] == "acme/eu"
    names = [p["name"] for p in client.get("/api/providers").json()["data"]]
    assert "acme/eu" in names


BAD_PAUSES: list[tuple[dict[str, Any], str]] = [
    ({"reason": "x"}, "body"),
    ({"for": "1h", "until": "2999-01-01T00:00:00Z", "reason": "x"}, "body"),
    ({"for": "soon", "reason": "x"}, "for"),
    ({"for": "-5m", "reason": "x"}, "for"),
    ({"for": "99999999999d", "reason": "x"}, "for"),
    ({"for": "3000000d", "reason": "x"}, "for_"),  # past year 9999: the ledger's name
    ({"until": "9999-12-31T23:00:00-05:00", "reason": "x"}, "until"),
    ({"until": "2001-01-01T00:00:00Z", "reason": "x"}, "until"),
    ({"for": "1h", "reason": ""}, "reason"),
    ({"for": "1h"}, "reason"),
]


def test_pause_rejects_bad_bodies(client: TestClient, ledger: Ledger) -> None:
    for body, field in BAD_PAUSES:
        response = client.post("/api/providers/infojobs/pause", json=body, headers=AUTH)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["field"] == field, body
    assert ledger.pauses() == []
