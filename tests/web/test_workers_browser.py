"""The Workers page in a real browser (issue 17): headless Chromium against
uvicorn serving a SQLite ledger with a live worker running a run, a dead one
and a stopped one; reached from the nav. Screenshots go to
``test-output/screenshots/workers*.png``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chromium import SCREENSHOTS
from playwright.sync_api import Browser
from test_dashboard_browser import serve
from workers_seed import DEAD, HOURLY, LIVE, STOPPED, ZONED, SeededWorkers, seed_workers

from runtrack import Ledger
from runtrack.api import create_app
from runtrack.config import Settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SeededWorkers]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('workers')}/ledger.db"
    with Ledger(url, heartbeat_interval=0.05) as ledger, seed_workers(url, ledger.now()) as seeded:
        server, thread, address = serve(create_app(ledger, Settings().validated()))
        try:
            yield address, seeded
        finally:
            server.should_exit = True
            thread.join(10)


def test_the_workers_page_lists_the_live_worker_and_what_it_runs(
    site: tuple[str, SeededWorkers], browser: Browser
) -> None:
    base, seeded = site
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    page.goto(base + "/")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Workers").click()
    page.wait_for_url(base + "/workers")
    page.screenshot(path=SCREENSHOTS / "workers.png", full_page=True)

    rows = page.locator("table.workers tbody tr")
    assert rows.count() == 3
    live = page.locator(f"tr#worker-{LIVE}")
    assert "live" in live.locator("td").nth(1).inner_text()
    running = live.locator("td").nth(2).inner_text()
    assert f"#{seeded.run_id}" in running and HOURLY in running
    served = live.locator("td").nth(3).inner_text()
    assert ZONED in served and "Europe/Madrid" in served
    assert "dead" in page.locator(f"tr#worker-{DEAD}").inner_text()
    assert "stopped" in page.locator(f"tr#worker-{STOPPED}").inner_text()
    assert page.locator("nav a[aria-current=page]").inner_text() == "Workers"

    live.get_by_role("link", name=ZONED).click()
    page.wait_for_url("**/jobs/shop%3Adaily")
    page.screenshot(path=SCREENSHOTS / "workers-job-schedule.png", full_page=True)
    facts = page.locator("dl.facts").first.inner_text()
    assert "cron '30 2 * * *' Europe/Madrid" in facts
    assert "02:30" in page.locator(".next-due").inner_text()
    assert problems == []
