"""The API's edges a newcomer meets: durations with a unit, unknown query
parameters, the CLI's filter values, typo'd providers (through HTTP)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from web_seed import AUTH, READ_TOKEN, TOKEN, Seeded, make_client

from runtrack import Ledger
from runtrack.api import create_app
from runtrack.config import Settings


def test_a_pause_duration_without_a_unit_is_refused(client: TestClient, ledger: Ledger) -> None:
    ledger.ensure_job("crm:contacts", provider="crm")
    response = client.post(
        "/api/providers/crm/pause", json={"for": "15", "reason": "quota"}, headers=AUTH
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "has no unit" in response.text and "15m" in response.text
    assert ledger.pauses() == []


def test_pausing_an_unknown_provider_needs_create(client: TestClient, ledger: Ledger) -> None:
    ledger.ensure_job("crm:contacts", provider="crm")
    ledger.ensure_job("board:search", provider="jobboard")
    typo = client.post(
        "/api/providers/jobbord/pause", json={"for": "15m", "reason": "429"}, headers=AUTH
    )
    assert typo.status_code == 404, typo.text
    assert "known providers: crm, jobboard" in typo.json()["detail"]
    assert ledger.pauses() == []
    new = client.post(
        "/api/providers/jobbord/pause",
        json={"for": "15m", "reason": "429", "create": True},
        headers=AUTH,
    )
    assert new.status_code == 200 and [p.provider for p in ledger.pauses()] == ["jobbord"]
    known = client.post(
        "/api/providers/crm/pause", json={"for": "15m", "reason": "429"}, headers=AUTH
    )
    assert known.status_code == 200, known.text


def test_stack_and_details_only_for_signed_in_callers(ledger: Ledger, seeded: Seeded) -> None:
    path = f"/api/runs/{seeded.failed}"
    with make_client(ledger, api_token=TOKEN, read_token=READ_TOKEN) as client:
        for headers in (AUTH, {"Authorization": f"Bearer {READ_TOKEN}"}):
            error = client.get(path, headers=headers).json()["error"]
            assert "Traceback" in error["stack"], headers
    with make_client(ledger, api_token=TOKEN) as client:  # reads open to anyone
        error = client.get(path).json()["error"]
        assert error == {"type": "ValueError", "message": "boom", "stack": None, "details": None}
        page = client.get(f"/runs/{seeded.failed}").text
        assert "Traceback" not in page and "sign in</a> to see them" in page
    public = Settings.from_env({"RUNTRACK_PUBLIC_ERRORS": "true"}, api_token=TOKEN)
    with TestClient(create_app(ledger, public)) as client:
        assert "Traceback" in client.get(path).json()["error"]["stack"]
        assert "Traceback" in client.get(f"/runs/{seeded.failed}").text


def test_docs_load_swagger_ui_from_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text and "https://" not in page.text
    for asset in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text):
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000, asset
    assert len(re.findall(r"/docs/assets/", page.text)) == 2
