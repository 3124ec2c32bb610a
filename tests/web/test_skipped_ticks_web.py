"""Skipped ticks (issue 21) as the API and the job's page show them: the
count, when the last one was skipped and why; nothing for a job that never
skipped one."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from web_seed import JOB_A, JOB_B, Seeded, make_client

from runtrack import Ledger, ManualClock

REASON = "busy: 1 of 1 slot held by run 7"


def test_the_api_and_the_job_page_show_the_skipped_ticks(
    db_url: str, clock: ManualClock, seeded: Seeded
) -> None:
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as ledger:
        ledger.skip_tick(JOB_A, reason="provider infojobs at its limit of 2 running runs")
        clock.advance(timedelta(minutes=15))
        ledger.skip_tick(JOB_A, reason=REASON)
        last = clock.now()
        with make_client(ledger) as client:
            jobs = {j["key"]: j for j in client.get("/api/jobs").json()["data"]}
            one = client.get("/api/jobs/" + quote(JOB_A, safe="")).json()
            page = client.get("/jobs/" + quote(JOB_A, safe="")).text
            quiet = client.get("/jobs/" + quote(JOB_B, safe="")).text

    shown = {k: jobs[JOB_A][k] for k in ("ticks_skipped", "last_skipped_at", "last_skip_reason")}
    assert shown == {
        "ticks_skipped": 2,
        "last_skipped_at": last.isoformat().replace("+00:00", "Z"),
        "last_skip_reason": REASON,
    }
    assert {k: one[k] for k in shown} == shown
    assert (jobs[JOB_B]["ticks_skipped"], jobs[JOB_B]["last_skip_reason"]) == (0, None)

    assert "2 ticks skipped</span>, last at " + last.strftime("%Y-%m-%d %H:%M:%S") in page
    assert f'<span class="skip-reason">{REASON}</span>' in page
    assert '<dt>Skipped ticks</dt><dd><span class="muted">none</span>' in quiet
