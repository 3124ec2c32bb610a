"""Facts of the job and run pages written once and truthfully: the next due
time (once, on the schedule's zone clock or in UTC, marked overdue when it
has passed), the strip's title and legend (the runs actually drawn), and
whether a run moves its job's watermark (never a failed or cancelled one)."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from web_seed import JOB_A, JOB_B, JOB_C, JOB_D, Seeded, make_client

from runtrack import Ledger, ManualClock, Run, Runner
from runtrack.web.pages.formatting import clock as utc_clock
from runtrack.web.pages.formatting import span

HOURLY, ZONED = "board:hourly", "shop:daily"


def _noop(run: Run) -> None:
    run.count("pages")


def fact(html: str, name: str) -> str:
    found = re.search(rf"<dt>{name}</dt><dd>(.*?)</dd>", html)
    assert found is not None, name
    return found.group(1)


def job_page(client: TestClient, key: str) -> str:
    response = client.get("/jobs/" + quote(key, safe=""))
    assert response.status_code == 200, response.text[:300]
    return response.text


def test_next_due_is_written_once_and_marked_overdue_once_past(
    db_url: str, clock: ManualClock
) -> None:
    with Ledger(db_url, clock=clock, heartbeat_interval=0.05) as ledger:
        runner = Runner(ledger, worker_id="w-1", reap_every=None, check_every=None)
        runner.job(HOURLY, provider="board", every="1h")(_noop)
        runner.job(ZONED, provider="shop", cron="30 2 * * *", tz="Europe/Madrid")(_noop)
        runner.run_once()  # registers both; the hourly job's first tick runs now
        hourly_due = ledger.job_state(HOURLY).job.next_due_at
        zoned_due = ledger.job_state(ZONED).job.next_due_at
        assert hourly_due is not None and zoned_due is not None
        with make_client(ledger) as client:
            hourly = fact(job_page(client, HOURLY), "Next due")
            zoned = fact(job_page(client, ZONED), "Next due")
            clock.advance(timedelta(hours=1, minutes=30))
            late = fact(job_page(client, HOURLY), "Next due")

    # A job without a zone: its UTC time, once, like every other time of the page.
    when = utc_clock(hourly_due)
    assert hourly == f'<span class="next-due" title="{when}">{when}</span>'
    # A zoned job: the zone's wall clock, the zone named once (UTC in the tooltip).
    local = zoned_due.astimezone(ZoneInfo("Europe/Madrid"))
    written = local.strftime("%Y-%m-%d 02:30:00 Europe/Madrid")
    assert zoned == f'<span class="next-due" title="{utc_clock(zoned_due)}">{written}</span>'
    # Past due: marked, with by how much.
    overdue = span(timedelta(minutes=30))
    assert late.endswith(f' <span class="badge overdue">overdue by {overdue}</span>')
    assert "overdue" not in hourly + zoned


def test_the_strip_title_and_legend_count_the_runs_drawn(
    ledger: Ledger, seeded: Seeded, client: TestClient
) -> None:
    drawn = len(ledger.recent_outcomes([JOB_A])[JOB_A]) + len(ledger.active_runs(JOB_A))
    assert drawn == 4  # two successes, a partial, a failure
    page = job_page(client, JOB_A)
    assert '<h3 id="recent-h">Last 4 runs</h3>' in page
    assert page.count('<a class="cell st-') == 4
    assert "<span>oldest → newest, last 4 runs</span>" in page
    assert "last 30 runs" not in page
    one = job_page(client, JOB_C)  # its one running run
    assert '<h3 id="recent-h">Last 1 run</h3>' in one and "newest, last 1 run</span>" in one
    # The overview's strips hold up to 30 finished runs: its legend says so.
    assert "<span>oldest → newest, last 30 runs</span>" in client.get("/").text


def test_a_run_says_truthfully_whether_it_moves_the_watermark(
    ledger: Ledger, seeded: Seeded, client: TestClient
) -> None:
    with ledger.run(JOB_B, provider="sam", on_partial="hold") as held:
        held.item("notice-1", "error", error="HTTP 500")
    assert ledger.get_run(held.id).status.value == "partial"
    expected = {
        seeded.successes[0]: "yes",
        seeded.partial: "yes",
        seeded.failed: "no (failed runs never move it)",
        seeded.cancelled: "no (cancelled runs never move it)",
        seeded.running: "only if it ends success or partial",
        seeded.pending: "only if it ends success or partial",
        held.id: "no (partial, and the job holds its watermark on a partial run)",
    }
    for run_id, said in expected.items():
        assert ledger.get_run(run_id).moves_watermark, run_id  # the flag alone says yes
        page = client.get(f"/runs/{run_id}")
        assert page.status_code == 200
        assert fact(page.text, "Moves watermark") == said, run_id
    assert ledger.get_run(seeded.running).job == JOB_C
    assert ledger.get_run(seeded.pending).job == JOB_D
