"""Where issue 18 shows: the overview starts with open incidents, the job
page shows expectations, health and incident history, GET /api/incidents,
and the metrics of incidents and health."""

from __future__ import annotations

import socket
import time

import pytest
from fastapi.testclient import TestClient

from runtrack import Ledger, RetryPolicy, Runner, Transient


def _late_incident(ledger: Ledger) -> None:
    ledger.expect("shop:late", success_within=0.2)
    with pytest.raises(ValueError, match="feed down"), ledger.run("shop:late"):
        raise ValueError("feed down")
    time.sleep(0.3)
    assert len(ledger.check().opened) == 1


def test_the_overview_starts_with_open_incidents(ledger: Ledger, client: TestClient) -> None:
    _late_incident(ledger)
    page = client.get("/").text
    assert page.index("Open incidents") < page.index("<h2>Jobs</h2>")
    section = page[page.index("Open incidents") : page.index("<h2>Jobs</h2>")]
    assert "shop:late" in section and "late" in section and "feed down" in section
    assert "Failed for good, last 24 h" in page


def test_before_the_check_the_overview_does_not_say_every_job_keeps_its_promises(
    ledger: Ledger, client: TestClient
) -> None:
    # (One request: the overview is cached for a few seconds.)
    ledger.expect("shop:late", success_within=0.2)
    with ledger.run("shop:late"):
        pass
    time.sleep(0.3)  # late now, and no check has run yet
    page = " ".join(client.get("/").text.split())
    assert "every job keeps its expectations" not in page
    assert "No open incident yet: the next check of the expectations opens one" in page
    assert "1 late or failing job(s)" in page


def test_the_overview_tells_retried_failures_from_failures_for_good(
    ledger: Ledger, client: TestClient
) -> None:
    runner = Runner(ledger, check_every=None)
    policy = RetryPolicy(max_attempts=2, initial=0, jitter=0)

    @runner.job("board:flaky", provider="board", every="1h", retry=policy)
    def flaky(run: object) -> None:
        if getattr(run, "attempt", 1) == 1:
            raise Transient("502")

    runner.run_once()
    runner.run_once()
    page = client.get("/").text
    assert "cell st-retried" in page and "failed, retried" in page
    assert "1 more failed and retried" in page


def test_the_job_page_shows_expectations_health_and_incidents(
    ledger: Ledger, client: TestClient
) -> None:
    _late_incident(ledger)
    page = client.get("/jobs/shop:late").text
    assert "a success within 200 ms" in page
    assert "h-failing" in page  # its one run failed for good
    assert "Incidents" in page and "no success within" in page


def test_api_incidents(ledger: Ledger, client: TestClient) -> None:
    _late_incident(ledger)
    body = client.get("/api/incidents", params={"open": "true"}).json()
    (incident,) = body["data"]
    assert (incident["job"], incident["kind"], incident["open"]) == ("shop:late", "late", True)
    assert client.get("/api/incidents", params={"job": "other"}).json() == {"data": []}
    assert client.get("/api/incidents", params={"opened": "1"}).status_code == 400


def test_metrics_of_incidents_health_and_never_succeeded_jobs(
    ledger: Ledger, client: TestClient
) -> None:
    _late_incident(ledger)
    text = client.get("/metrics").text
    assert 'runtrack_open_incidents{kind="late"} 1.0' in text
    assert 'runtrack_job_health{job="shop:late",state="failing"} 1.0' in text
    assert 'runtrack_job_last_success_timestamp_seconds{job="shop:late"} 0.0' in text
    assert 'runtrack_job_first_seen_timestamp_seconds{job="shop:late"}' in text


def test_a_failed_notification_is_shown_on_the_job_page(
    ledger: Ledger, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RUNTRACK_NOTIFY", f"http://127.0.0.1:{port}/hook?token=secret")
    monkeypatch.setenv("RUNTRACK_NOTIFY_GIVE_UP_AFTER", "1s")
    _late_incident(ledger)
    assert ledger.deliver() == 0
    (delivery,) = ledger.deliveries()
    assert delivery.state.value == "failed" and delivery.attempts == 1
    page = client.get("/jobs/shop:late").text
    section = page[page.index("Notifications") :]
    assert "failed" in section and "refused" in section.lower()
    assert "secret" not in page  # the sink's URL is shown without its tokens
