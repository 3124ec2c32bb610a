"""The job page lists what the job owes and what it gave up."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from dashboard_seed import TOKEN
from fastapi.testclient import TestClient

from runtrack import Ledger
from runtrack.api import create_app
from runtrack.config import Settings

JOB = "shop:prices/<b>eu</b>"


def test_the_job_page_lists_owed_and_given_up_entries(ledger: Ledger) -> None:
    with ledger.run(JOB, max_carry_attempts=1) as run:
        run.item("sku-<i>1</i>", "error", source="amazon", error="HTTP 500 <script>")
    with ledger.run(JOB) as run:
        now = ledger.now()
        run.failed_slice(now - timedelta(hours=2), now - timedelta(hours=1), "HTTP 502")
    owed, given_up = ledger.carried(JOB).slices[0], ledger.carried(JOB).items[0]
    with TestClient(create_app(ledger, Settings(api_token=TOKEN).validated())) as client:
        html = client.get("/jobs/" + quote(JOB, safe="")).text
    _, _, rest = html.partition('id="owed-h"')
    owed_part, _, given_up_part = rest.partition('id="given-up-h"')
    assert f"#{owed.id}" in owed_part and "HTTP 502" in owed_part
    assert f"#{given_up.id}" in given_up_part
    assert "sku-&lt;i&gt;1&lt;/i&gt;" in given_up_part and "@ amazon" in given_up_part
    assert "HTTP 500 &lt;script&gt;" in given_up_part
    assert "<script>" not in given_up_part


def test_a_job_that_owes_nothing_says_so(ledger: Ledger) -> None:
    with ledger.run("shop:clean") as run:
        run.item("a", "success")
    with TestClient(create_app(ledger, Settings().validated())) as client:
        html = client.get("/jobs/shop:clean").text
    assert "Nothing: no failed item or slice is waiting for a retry." in html
    assert 'id="given-up-h"' not in html
