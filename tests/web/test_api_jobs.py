"""GET /api/jobs, /api/providers and /api/health."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from web_seed import JOB_A, JOB_B, JOB_C, JOB_D, Seeded, make_client

from runtrack import Ledger, ManualClock


def test_jobs_list_every_job_state(client: TestClient, ledger: Ledger, seeded: Seeded) -> None:
    jobs = {j["key"]: j for j in client.get("/api/jobs").json()["data"]}
    assert list(jobs) == sorted([JOB_A, JOB_B, JOB_C, JOB_D])
    a = jobs[JOB_A]
    assert a["provider"] == "infojobs"
    assert a["last_run"] == {
        "run_id": seeded.failed,
        "status": "failed",
        "finished_at": a["last_run"]["finished_at"],
    }
    assert a["last_success"]["run_id"] == seeded.successes[1]
    assert a["consecutive_failures"] == 1
    assert a["watermark"] is not None
    assert a["checkpoint"] == {"page": 7}
    assert a["active_runs"] == 0
    assert a["paused"] is None
    assert jobs[JOB_C]["active_runs"] == 1
    assert jobs[JOB_C]["running_runs"] == 1  # started, not queued
    assert jobs[JOB_D]["paused"]["reason"] == "429 from the API"
    assert jobs[JOB_D]["last_run"] is None
    only_sam = client.get("/api/jobs", params={"provider": "sam"}).json()["data"]
    assert [j["key"] for j in only_sam] == [JOB_B]


def test_one_job_with_recent_runs(client: TestClient, seeded: Seeded) -> None:
    job = client.get(f"/api/jobs/{JOB_A}", params={"limit": 2}).json()
    assert job["key"] == JOB_A
    assert [r["id"] for r in job["recent_runs"]] == [seeded.failed, seeded.partial]
    missing = client.get("/api/jobs/no:such/job")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("job-not-found")
    assert "no:such/job" in missing.json()["detail"]


def test_providers_with_their_pauses(client: TestClient, seeded: Seeded) -> None:
    providers = client.get("/api/providers").json()["data"]
    assert [p["name"] for p in providers] == ["amazon", "ebay", "infojobs", "sam"]
    by_name = {p["name"]: p for p in providers}
    assert by_name["infojobs"]["jobs"] == 1
    assert by_name["ebay"]["paused"]["reason"] == "429 from the API"
    assert by_name["sam"]["paused"] is None


def test_health_of_a_fresh_ledger(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["database"] is True
    assert health["stale_runs"] == 0


def test_health_fails_while_stale_runs_wait_for_a_dead_reaper(db_url: str) -> None:
    clock = ManualClock()
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as crashed:
        crashed.start_run("jobs:crashy")  # the worker dies: no more heartbeats
    clock.advance(timedelta(minutes=5))  # past the 60 s stale threshold
    with (
        Ledger(db_url, clock=clock, heartbeat_interval=0.05) as ledger,
        make_client(ledger) as client,
    ):
        sick = client.get("/api/health")
        assert sick.status_code == 503
        assert sick.headers["content-type"] == "application/problem+json"
        problem = sick.json()
        assert problem["stale_runs"] == 1
        assert problem["last_reap_at"] is None
        assert "stale" in problem["detail"]
        ledger.reap(stale_after=3600)  # a reaper is alive, even if it reaped nothing
        alive = client.get("/api/health").json()
        assert (alive["status"], alive["stale_runs"]) == ("ok", 1)
        clock.advance(timedelta(minutes=5))  # ... and then it stops
        assert client.get("/api/health").status_code == 503
        ledger.reap()
        healed = client.get("/api/health").json()
        assert (healed["status"], healed["stale_runs"]) == ("ok", 0)


def test_health_is_503_when_the_database_is_unreachable() -> None:
    closed = "postgresql://postgres@127.0.0.1:9/nowhere"  # the discard port: refused
    with (
        Ledger(closed, migrate=False, heartbeat_interval=0.05) as ledger,
        make_client(ledger) as client,
    ):
        response = client.get("/api/health")
        assert response.status_code == 503
        assert response.json()["database"] is False
        assert "unreachable" in response.json()["detail"]
        runs = client.get("/api/runs")
        assert runs.status_code == 503
        assert runs.headers["content-type"] == "application/problem+json"
        assert "127.0.0.1" not in runs.text  # driver messages stay in the server log
