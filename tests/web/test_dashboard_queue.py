"""Issue 17 on the dashboard: "Run now" (with k=v params) and "Backfill" on a
job's page, its queue with why each run waits, "Re-run" on a run's page, the
backfills and one backfill's progress; every button needs a session signed in
with the API token and a request from the dashboard's own pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from runtrack import Ledger, RunStatus
from runtrack.api import create_app
from runtrack.config import Settings
from runtrack.web.pages.queue import parse_params
from runtrack.workers import WorkerJob

TOKEN = "t" * 32
JOB = "boards:search"


def make_client(ledger: Ledger, **settings: Any) -> TestClient:
    return TestClient(create_app(ledger, Settings(**settings).validated()))


@pytest.fixture
def dashboard(ledger: Ledger) -> Iterator[TestClient]:
    with ledger.run(JOB, provider="boards"):
        pass
    with make_client(ledger, api_token=TOKEN) as client:
        yield client


def sign_in(client: TestClient) -> None:
    response = client.post("/session", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text[:300]


def test_params_are_k_v_lines() -> None:
    assert parse_params("q=python\n\npage=2\nflag=true\nnote=a b") == {
        "q": "python",
        "page": 2,
        "flag": True,
        "note": "a b",
    }
    assert parse_params("  \n") is None
    for bad in ("novalue", "=x", "a=1\na=2"):
        with pytest.raises(ValueError, match="params"):
            parse_params(bad)


def test_run_now_queues_a_run_and_the_job_page_says_why_it_waits(
    ledger: Ledger, dashboard: TestClient
) -> None:
    job_path = "/jobs/" + quote(JOB, safe="")
    html = dashboard.get(job_path).text
    assert "Run now" in html and "Backfill" in html and "Nothing queued." in html
    refused = dashboard.post(f"{job_path}/trigger", data={"params": "q=rust"})
    assert refused.status_code == 403 and "Not queued: this needs the API token" in refused.text
    sign_in(dashboard)
    forged = dashboard.post(
        f"{job_path}/trigger", data={"params": "q=rust"}, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    assert ledger.count_runs(status=["pending"]) == 0

    done = dashboard.post(
        f"{job_path}/trigger", data={"params": "q=rust\npage=2"}, follow_redirects=False
    )
    assert done.status_code == 303
    run_id = int(done.headers["location"].split("/")[-1].split("?")[0])
    run = ledger.get_run(run_id)
    assert run.status is RunStatus.PENDING and run.params == {"q": "rust", "page": 2}
    assert run.triggered_by == "dashboard"
    assert (
        "Queued: a worker serving this job picks it up."
        in dashboard.get(done.headers["location"]).text
    )
    page = dashboard.get(job_path).text
    assert f'href="/runs/{run_id}"' in page and "no live worker serves this job" in page
    expires = (run.created_at + ledger.pending_ttl).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert expires in page
    # A live worker serving the job: the run waits for its free slot, and
    # does not expire meanwhile (the reaper agrees, see test_pending_expiry).
    ledger.register_worker("board-worker", [WorkerJob(JOB, "every 1h")])
    page = dashboard.get(job_path).text
    assert "waiting for a free slot of a live worker serving this job" in page
    assert "not while a live worker serves the job" in page and expires not in page
    ledger.worker_stopped("board-worker")
    assert "no live worker serves this job" in dashboard.get(job_path).text
    ledger.pause("boards", for_="1h", reason="429")
    assert "provider boards is paused for" in dashboard.get(job_path).text

    bad = dashboard.post(f"{job_path}/trigger", data={"params": "oops"})
    assert bad.status_code == 422 and "Not queued: params: line 1" in bad.text
    missing = dashboard.post("/jobs/no%3Asuch/trigger", data={"params": ""})
    assert missing.status_code == 404


def test_rerun_from_a_run_page(ledger: Ledger, dashboard: TestClient) -> None:
    original = ledger.list_runs(job=JOB, limit=1).items[0]
    assert "Re-run" in dashboard.get(f"/runs/{original.id}").text
    assert dashboard.post(f"/runs/{original.id}/rerun").status_code == 403
    sign_in(dashboard)
    done = dashboard.post(f"/runs/{original.id}/rerun", follow_redirects=False)
    assert done.status_code == 303
    again = ledger.get_run(int(done.headers["location"].split("/")[-1].split("?")[0]))
    assert again.rerun_of == original.id and again.status is RunStatus.PENDING
    page = dashboard.get(f"/runs/{again.id}").text
    assert f're-run of <a href="/runs/{original.id}">' in page
    assert dashboard.post("/runs/999999/rerun").status_code == 404


def test_backfill_from_the_job_page_and_its_progress(ledger: Ledger, dashboard: TestClient) -> None:
    job_path = "/jobs/" + quote(JOB, safe="")
    form = {"start": "2026-01-01", "end": "2026-01-08", "every": "1d", "max_parallel": "2"}
    assert dashboard.post(f"{job_path}/backfill", data=form).status_code == 403
    sign_in(dashboard)
    done = dashboard.post(f"{job_path}/backfill", data=form, follow_redirects=False)
    assert done.status_code == 303, done.text[:500]
    path = done.headers["location"].split("?")[0]
    backfill_id = int(path.split("/")[-1])
    record = ledger.get_backfill(backfill_id)
    assert record.windows == 7 and record.max_parallel == 2
    assert record.start == datetime(2026, 1, 1, tzinfo=UTC)
    page = dashboard.get(done.headers["location"]).text
    assert "0 done · 0 failed · 7 queued · 0 running" in page
    assert page.count('<tr class="window-queued">') == 7
    assert f'href="/backfills/{backfill_id}"' in dashboard.get("/backfills").text
    job_page = dashboard.get(job_path).text
    assert f"backfill {backfill_id}" in job_page and "behind 1 queued run(s)" in job_page

    cancelled = dashboard.post(f"{path}/cancel", follow_redirects=False)
    assert cancelled.status_code == 303
    assert ledger.get_backfill(backfill_id).progress.failed == 7
    assert "7 failed" in dashboard.get(cancelled.headers["location"]).text
    resumed = dashboard.post(f"{path}/resume", follow_redirects=False)
    assert resumed.status_code == 303 and ledger.get_backfill(backfill_id).progress.queued == 7

    inverted = dict(form, end="2025-12-01")
    bad = dashboard.post(f"{job_path}/backfill", data=inverted)
    assert bad.status_code == 422 and "Not queued: end" in bad.text
    assert dashboard.get("/backfills/424242").status_code == 404
    assert dashboard.post("/backfills/424242/resume").status_code == 404
    assert dashboard.post(f"{path}/explode").status_code == 404
