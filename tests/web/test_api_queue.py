"""Issue 17 on the API: trigger a job (202 with the queued run), re-run a run."""

from __future__ import annotations

from fastapi.testclient import TestClient
from web_seed import AUTH, JOB_A, Seeded

from runtrack import Ledger, RunStatus


def test_trigger_queues_a_run_with_params(
    client: TestClient, ledger: Ledger, seeded: Seeded
) -> None:
    response = client.post(
        f"/api/jobs/{JOB_A}/trigger", json={"params": {"q": "rust"}}, headers=AUTH
    )
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["status"] == "pending" and run["job"] == JOB_A
    assert run["params"] == {"q": "rust"} and run["triggered_by"] == "api"
    again = client.post(f"/api/jobs/{JOB_A}/trigger", json={"params": {"q": "rust"}}, headers=AUTH)
    assert again.status_code == 202 and again.json()["id"] == run["id"]  # a double click
    bare = client.post(f"/api/jobs/{JOB_A}/trigger", headers=AUTH)
    assert bare.status_code == 202 and bare.json()["params"] is None
    assert ledger.get_run(run["id"]).status is RunStatus.PENDING


def test_trigger_queues_a_run_with_labels(
    client: TestClient, ledger: Ledger, seeded: Seeded
) -> None:
    body = {"params": {"q": "go"}, "labels": {"team": "growth"}}
    response = client.post(f"/api/jobs/{JOB_A}/trigger", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["labels"] == {"team": "growth"}
    assert ledger.get_run(run["id"]).labels == {"team": "growth"}
    listed = client.get("/api/runs", params={"label": "team:growth"}).json()
    assert [r["id"] for r in listed["data"]] == [run["id"]]
    before = ledger.count_runs(job=JOB_A)
    bad = {"labels": {"bad name": "x"}}
    refused = client.post(f"/api/jobs/{JOB_A}/trigger", json=bad, headers=AUTH)
    assert refused.status_code == 422 and "labels" in refused.text
    assert ledger.count_runs(job=JOB_A) == before


def test_trigger_refuses_unknown_jobs_and_bad_bodies(client: TestClient, seeded: Seeded) -> None:
    missing = client.post("/api/jobs/no:such:job/trigger", headers=AUTH)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    bad = client.post(f"/api/jobs/{JOB_A}/trigger", json={"params": [1, 2]}, headers=AUTH)
    assert bad.status_code == 422
    extra = client.post(f"/api/jobs/{JOB_A}/trigger", json={"param": {}}, headers=AUTH)
    assert extra.status_code == 422


def test_rerun_queues_the_same_job_params_and_window(
    client: TestClient, ledger: Ledger, seeded: Seeded
) -> None:
    original = ledger.get_run(seeded.partial)
    response = client.post(f"/api/runs/{seeded.partial}/rerun", headers=AUTH)
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["rerun_of"] == seeded.partial and run["status"] == "pending"
    assert run["job"] == original.job and run["params"] == original.params
    assert client.post("/api/runs/999999/rerun", headers=AUTH).status_code == 404
