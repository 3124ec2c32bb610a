"""The dashboard's pages through the ASGI app, on SQLite, PostgreSQL and MariaDB:
every page renders a seeded history, filters and pages work, hostile strings
are escaped, and the buttons that change state need the API token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from dashboard_seed import (
    JOB_OFFERS,
    JOB_PRICES,
    READ_TOKEN,
    TOKEN,
    XSS_IMG,
    XSS_JOB,
    XSS_PROVIDER,
    XSS_SCRIPT,
    Seeded,
    seed_history,
)
from fastapi.testclient import TestClient
from sqlalchemy import event

from runtrack import Ledger, RunStatus
from runtrack.api import create_app
from runtrack.config import Settings

RUN_IDS = re.compile(r'data-run-id="(\d+)"')
NEXT_LINK = re.compile(r'<a class="button" href="([^"]+)" rel="next">')


def make_client(ledger: Ledger, **settings: Any) -> TestClient:
    return TestClient(create_app(ledger, Settings(**settings).validated()))


OFFERS = 12  # runs of JOB_OFFERS in the seeded history (25 runs in all)


@pytest.fixture
def history(ledger: Ledger, db_url: str) -> Seeded:
    return seed_history(db_url, ledger.now(), offers=OFFERS)


@pytest.fixture
def dashboard(ledger: Ledger) -> Iterator[TestClient]:
    with make_client(ledger, api_token=TOKEN) as client:
        yield client


def page(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, (path, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    assert TOKEN not in response.text
    return response.text


def listed(html: str) -> list[int]:
    return [int(found) for found in RUN_IDS.findall(html)]


def sign_in(client: TestClient, token: str = TOKEN) -> None:
    response = client.post("/session", data={"token": token, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text[:300]


def test_every_page_renders_the_history(
    ledger: Ledger, history: Seeded, dashboard: TestClient
) -> None:
    overview = page(dashboard, "/")
    for key in (JOB_OFFERS, JOB_PRICES):
        assert f">{key}</a>" in overview
    # The silent running run (a pending run is queued, never stale: issue 17).
    assert ledger.count_stale() == 1
    assert re.search(r'Stale</div><div class="value">1<', overview)
    assert re.search(r'Running</div><div class="value">1<', overview)
    day = ledger.now() - timedelta(hours=24)
    assert ledger.count_started("failed", since=day) == 3  # a 503, a timeout, the hostile one
    # Issue 18: the tile counts failures for good (retried ones apart).
    assert re.search(r'Failed for good, last 24 h</div><div class="value">3<', overview)
    assert "infojobs answered 503 Service Unavailable" in overview  # latest failures
    finished = sum(len(strip) for strip in ledger.recent_outcomes().values())
    assert overview.count('<a class="cell st-') == finished + len(ledger.active_runs())

    runs = page(dashboard, "/runs")
    assert listed(runs) == [run.id for run in ledger.list_runs(limit=50).items]

    partial = page(dashboard, f"/runs/{history.partial}")
    assert "Group summary: 8 groups" in partial
    assert "HTTP 500 from marketplace" in partial
    retry = page(dashboard, f"/runs/{history.retry}")
    assert f'href="/runs/{history.retry - 1}" rel="prev"' in retry

    job = page(dashboard, "/jobs/" + quote(JOB_OFFERS, safe=""))
    assert job.count('<svg class="chart"') == 2
    assert "Duration (min)" in job and "Time (UTC)" in job
    assert f'"cursor": "c{OFFERS - 1}"' in job.replace("&#34;", '"')  # the job's checkpoint

    providers = page(dashboard, "/providers")
    assert "429 Too Many Requests" in providers and "Resume now" in providers
    assert "Sign in" in page(dashboard, "/session")


def test_hostile_strings_are_shown_as_text(history: Seeded, dashboard: TestClient) -> None:
    paths = [
        "/",
        "/runs",
        f"/runs?job={quote(XSS_JOB)}",
        f"/runs?provider={quote(XSS_PROVIDER)}",
        f"/runs/{history.xss_failed}",
        f"/runs/{history.xss_failed - 1}",
        f"/runs/{history.xss_failed - 1}?group={quote(XSS_IMG)}",
        "/jobs/" + quote(XSS_JOB, safe=""),
        "/providers",
    ]
    for path in paths:
        html = page(dashboard, path)
        assert XSS_SCRIPT not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
    detail = page(dashboard, f"/runs/{history.xss_failed - 1}")
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in detail  # item error and group


def test_run_filters(ledger: Ledger, history: Seeded, dashboard: TestClient) -> None:
    failed = listed(page(dashboard, "/runs?status=failed"))
    assert history.failed in failed
    assert failed == [r.id for r in ledger.list_runs(status="failed", limit=50).items]
    both = listed(page(dashboard, "/runs?status=failed&status=partial"))
    assert {ledger.get_run(i).status for i in both} == {RunStatus.FAILED, RunStatus.PARTIAL}

    prices = listed(page(dashboard, f"/runs?job={quote(JOB_PRICES)}"))
    assert len(prices) == 6 and {ledger.get_run(i).job for i in prices} == {JOB_PRICES}
    amazon = listed(page(dashboard, "/runs?provider=amazon&status=partial"))
    assert amazon == prices

    since = (ledger.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    recent = listed(page(dashboard, f"/runs?since={since}"))
    assert recent == [history.pending, history.stale]
    until = listed(page(dashboard, f"/runs?until={since}&job={quote(JOB_PRICES)}"))
    assert until == prices


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=exploded", "status"),
        ("since=yesterday", "since"),
        ("until=2026-13-45T99:00", "until"),
        ("cursor=not-a-cursor", "cursor"),
        ("job=" + "x" * 300, "job"),
    ],
)
def test_bad_filters_are_explained(dashboard: TestClient, query: str, field: str) -> None:
    html = page(dashboard, f"/runs?{query}", status=400)
    assert f"Filter not applied: {field}:" in html
    assert not listed(html)


def test_pages_walk_every_run_once(ledger: Ledger, history: Seeded, dashboard: TestClient) -> None:
    everything = [r.id for r in ledger.list_runs(limit=1000).items]
    seen: list[int] = []
    path: str | None = "/runs?limit=10"
    pages = 0
    while path is not None:
        html = page(dashboard, path.replace("&amp;", "&"))
        seen += listed(html)
        pages += 1
        found = NEXT_LINK.search(html)
        path = found.group(1) if found else None
    assert seen == everything
    assert pages == -(-len(everything) // 10) == 3


def test_cancel_needs_the_api_token(ledger: Ledger, history: Seeded, dashboard: TestClient) -> None:
    url = f"/runs/{history.stale}/cancel"
    refused = dashboard.post(url, data={"reason": "stop"})
    assert refused.status_code == 403
    assert "Not cancelled: this needs the API token" in refused.text
    wrong = dashboard.post("/session", data={"token": "x" * 32}, follow_redirects=False)
    assert wrong.status_code == 403 and "not valid" in wrong.text
    assert "runtrack_session" not in wrong.headers.get("set-cookie", "")
    assert ledger.get_run(history.stale).cancel_requested_at is None

    signed = dashboard.post(
        "/session", data={"token": TOKEN, "next": url[:-7]}, follow_redirects=False
    )
    assert signed.status_code == 303 and signed.headers["location"] == url[:-7]
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie

    forged = dashboard.post(url, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and "did not come from the dashboard" in forged.text
    assert ledger.get_run(history.stale).cancel_requested_at is None

    done = dashboard.post(url, data={"reason": "operator says stop"}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/runs/{history.stale}?done=cancel-requested"
    run = ledger.get_run(history.stale)
    assert run.cancel_requested_at is not None and run.cancel_requested_by == "dashboard"
    assert run.cancel_reason == "operator says stop"
    assert "Cancel requested" in page(dashboard, done.headers["location"])

    kept = dashboard.post("/session/end", headers={"Origin": "https://evil.example"})
    assert kept.status_code == 403  # another site cannot sign the operator out either
    pending = dashboard.post(f"/runs/{history.pending}/cancel", follow_redirects=False)
    assert pending.headers["location"].endswith("?done=cancelled")
    assert ledger.get_run(history.pending).status is RunStatus.CANCELLED
    again = dashboard.post(f"/runs/{history.pending}/cancel")
    assert (
        again.status_code == 409 and "only pending or running runs can be cancelled" in again.text
    )


def test_resume_needs_the_api_token(ledger: Ledger, history: Seeded, dashboard: TestClient) -> None:
    url = "/providers/amazon/resume"
    assert dashboard.post(url).status_code == 403
    assert ledger.paused("amazon") is not None
    sign_in(dashboard)
    done = dashboard.post(url, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/providers?resumed=amazon"
    assert ledger.paused("amazon") is None
    assert "Resumed amazon" in page(dashboard, done.headers["location"])
    assert dashboard.post(url).status_code == 409
    hostile = dashboard.post("/providers/" + quote(XSS_PROVIDER, safe="") + "/resume")
    assert hostile.status_code == 200  # followed the redirect back to the page
    assert ledger.paused(XSS_PROVIDER) is None


def test_without_an_api_token_the_dashboard_is_read_only(ledger: Ledger) -> None:
    running = ledger.start_run("job", provider="p")
    with make_client(ledger) as client:
        assert "no API token configured" in page(client, "/")
        signed = client.post("/session", data={"token": "anything-at-all-123"})
        assert signed.status_code == 403 and "read-only" in signed.text
        refused = client.post(f"/runs/{running.id}/cancel")
        assert refused.status_code == 403 and "no API token configured" in refused.text
    ledger.finish_run(running)


def test_read_token_guards_every_page(ledger: Ledger) -> None:
    running = ledger.start_run("job", provider="p")
    with make_client(ledger, api_token=TOKEN, read_token=READ_TOKEN) as client:
        for path in ("/", "/runs", f"/runs/{running.id}", "/jobs/job", "/providers"):
            assert "requires a token to read" in page(client, path, status=401)
        sign_in(client, READ_TOKEN)
        assert "Signed in: read only" in page(client, f"/runs/{running.id}")
        refused = client.post(f"/runs/{running.id}/cancel")
        assert refused.status_code == 403 and "needs the API token" in refused.text
        assert READ_TOKEN not in refused.text
    ledger.finish_run(running)


def test_unknown_runs_and_jobs_are_not_found(dashboard: TestClient) -> None:
    assert "No run has id &#39;999999&#39;" in page(dashboard, "/runs/999999", status=404)
    assert "No run has id" in page(dashboard, "/runs/abc", status=404)
    assert "No job has key" in page(dashboard, "/jobs/" + quote("no/such job"), status=404)
    anonymous = dashboard.post("/runs/999999/cancel")  # refused before the lookup
    assert anonymous.status_code == 403 and "No run has id" not in anonymous.text
    sign_in(dashboard)
    assert dashboard.post("/runs/999999/cancel").status_code == 404


def test_overview_queries_do_not_grow_with_history(ledger: Ledger, dashboard: TestClient) -> None:
    statements: list[str] = []

    @event.listens_for(ledger.engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def overview_statements() -> int:
        page(dashboard, "/")
        statements.clear()
        page(dashboard, "/")
        return len(statements)

    for n in range(3):
        with ledger.run(f"job-{n}", provider="p"):
            pass
    few = overview_statements()
    for n in range(3, 40):  # more jobs, more providers, more runs per job
        with ledger.run(f"job-{n}", provider=f"p{n % 7}"):
            pass
    for _ in range(5):
        with ledger.run("job-0", provider="p"):
            pass
    assert overview_statements() == few
    event.remove(ledger.engine, "before_cursor_execute", record)


def test_assets_and_security_headers(dashboard: TestClient) -> None:
    css = dashboard.get("/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = dashboard.get("/static/dashboard.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    headers = dashboard.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
