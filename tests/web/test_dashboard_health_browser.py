"""Issue 18 in a real browser: retries, timeouts and rate limits read as
described (a retried attempt apart from a failure for good, a timeout
failed, a rate limit as a provider pause), and the overview starts with the
open incident. Screenshots go to ``test-output/screenshots/health-*.png``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from chromium import SCREENSHOTS
from playwright.sync_api import Browser
from test_dashboard_browser import serve

from runtrack import Ledger, RateLimited, RetryPolicy, Run, Runner, Transient
from runtrack.api import create_app
from runtrack.config import Settings

pytestmark = pytest.mark.browser


def _seed(ledger: Ledger) -> None:
    runner = Runner(ledger, check_every=None)
    retry = RetryPolicy(max_attempts=2, initial=0, jitter=0)

    @runner.job("health:flaky", provider="board", every="1h", retry=retry)
    def flaky(run: Run) -> None:
        if run.attempt == 1:
            raise Transient("HTTP 502 from the board")

    @runner.job("health:slow", provider="board", every="1h", timeout=0.2)
    def slow(run: Run) -> None:
        while True:
            run.count("pages")
            time.sleep(0.01)

    @runner.job("health:geo", provider="geocoder", every="1h")
    def geo(run: Run) -> None:
        raise RateLimited("HTTP 429 from the geocoder", retry_after=600)

    runner.run_once()
    runner.run_once()  # the flaky job's retry
    ledger.expect("health:slow", max_failures=1)
    assert len(ledger.check().opened) == 1


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('health')}/ledger.db"
    with Ledger(url, heartbeat_interval=0.05) as ledger:
        _seed(ledger)
        server, thread, address = serve(create_app(ledger, Settings().validated()))
        try:
            yield address
        finally:
            server.should_exit = True
            thread.join(10)


def test_retries_timeouts_and_rate_limits_read_as_they_are(base: str, browser: Browser) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    page.goto(base + "/")
    page.screenshot(path=SCREENSHOTS / "health-overview.png", full_page=True)
    text = page.inner_text("body")
    assert text.index("Open incidents") < text.index("Jobs")
    assert "health:slow" in text.split("Jobs")[0]  # the failing incident comes first
    assert "rate limited: provider paused until" in text
    assert "timeout" in text
    assert page.locator("a.cell.st-retried").count() == 1
    assert page.locator("a.cell.st-rate_limited").count() == 1
    assert "failed, retried" in (page.locator("a.cell.st-retried").get_attribute("title") or "")
    health = {
        row.locator("td.key").inner_text(): row.locator(".health").inner_text()
        for row in page.locator("table.jobs tbody tr").all()
    }
    assert health == {"health:flaky": "healthy", "health:geo": "paused", "health:slow": "failing"}

    page.goto(base + "/jobs/health:slow")
    page.screenshot(path=SCREENSHOTS / "health-job.png", full_page=True)
    job = page.inner_text("body")
    assert "failing" in job and "fewer than 1 failed tick(s) in a row" in job
    assert "Incidents" in job and "open" in job
    assert problems == []
