"""GET /api/jobs/{key}/carried and the token-protected forget."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from web_seed import AUTH, TOKEN, make_client

from runtrack import Ledger

JOB = "infojobs:search/python:madrid"  # ':' and '/' in a key


def owe(ledger: Ledger) -> None:
    with ledger.run(JOB) as run:
        run.item("offer-7", "error", group="p3", source="infojobs", data={"page": 3}, error="500")
        now = ledger.now()
        run.failed_slice(now - timedelta(hours=1), now - timedelta(minutes=30), "HTTP 502")


def test_what_a_job_owes(client: TestClient, ledger: Ledger) -> None:
    owe(ledger)
    body = client.get(f"/api/jobs/{JOB}/carried").json()
    assert body["job"] == JOB
    (item,) = body["items"]
    assert (item["key"], item["group"], item["source"], item["data"]) == (
        "offer-7",
        "p3",
        "infojobs",
        {"page": 3},
    )
    assert (item["attempts"], item["state"], item["last_error"]) == (1, "owed", "500")
    (piece,) = body["slices"]
    assert piece["reason"] == "HTTP 502" and piece["start"].endswith("Z")
    missing = client.get("/api/jobs/no:such/job/carried")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("job-not-found")
    # The job's own route still takes keys that end like this one's routes.
    assert client.get(f"/api/jobs/{JOB}").json()["key"] == JOB


def test_forget_needs_the_token(ledger: Ledger) -> None:
    owe(ledger)
    entry = ledger.carried(JOB).items[0].id
    path = f"/api/jobs/{JOB}/carried/{entry}/forget"
    with make_client(ledger) as client:  # no token configured
        assert client.post(path, headers=AUTH).status_code == 403
    with make_client(ledger, api_token=TOKEN) as client:
        assert client.post(path).status_code == 401
        assert client.post(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert len(ledger.carried(JOB)) == 2
        done = client.post(path, headers=AUTH)
        assert done.status_code == 200
        assert done.json() == {"job": JOB, "forgotten": entry}
        assert [s.reason for s in ledger.carried(JOB).slices] == ["HTTP 502"]
        assert not ledger.carried(JOB).items
        again = client.post(path, headers=AUTH)
        assert again.status_code == 404
        assert again.json()["type"].endswith("carried-not-found")
