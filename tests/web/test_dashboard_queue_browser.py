"""Issue 17 in a real browser (headless Chromium): "Run now" with a param on
a job's page queues a run that a real runner process (``runtrack worker``)
claims and finishes, and the run's page follows it to success with its
params shown; a backfill from the same page runs to done on its progress
view. Screenshots go to ``test-output/screenshots/queue-*.png``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from chromium import SCREENSHOTS
from playwright.sync_api import Browser, Page
from test_dashboard_browser import serve

from runtrack import Ledger, RunStatus
from runtrack.api import create_app
from runtrack.config import Settings

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
TOKEN = "queue-browser-token-0123456789abcdef"
JOB = "web:search"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Ledger]]:
    url = f"sqlite:///{tmp_path}/ledger.db"
    env = {**os.environ, "RUNTRACK_DATABASE_URL": url}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    with Ledger(url) as ledger:
        ledger.ensure_job(JOB, provider="web")
        server, thread, base = serve(create_app(ledger, Settings(api_token=TOKEN).validated()))
        with (tmp_path / "worker.out").open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "runtrack", "worker", "browser_queue_worker:runner"],
                env=env,
                stdout=out,
                stderr=out,
                cwd=HERE,
            )
        try:
            yield base, ledger
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(30)
            server.should_exit = True
            thread.join(10)
        assert code == 0, (tmp_path / "worker.out").read_text()[-3000:]


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"queue-{name}.png", full_page=True)


def test_run_now_with_a_param_leads_to_a_finished_run(
    site: tuple[str, Ledger], browser: Browser
) -> None:
    base, ledger = site
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    job_path = "/jobs/" + quote(JOB, safe="")
    page.goto(f"{base}/session?next={quote(job_path)}")
    page.fill("input[name=token]", TOKEN)
    page.click("button:has-text('Sign in')")
    page.wait_for_load_state("load")
    assert page.url.endswith(job_path)
    shot(page, "job")

    page.fill("textarea[name=params]", "q=rust\npages=3")
    page.click("button:has-text('Run now')")
    page.wait_for_load_state("load")
    assert "/runs/" in page.url and "Queued" in page.inner_text(".banner.notice")
    run_id = int(page.url.split("/runs/")[1].split("?")[0])
    # No reload: the run page's own refresh follows the run to its end.
    page.wait_for_function(
        "() => document.querySelector('#live h1').textContent.includes('success')",
        timeout=30_000,
    )
    params = page.locator("section.card", has_text="Params").inner_text()
    assert '"q": "rust"' in params and '"pages": 3' in params
    shot(page, "run-now-finished")
    run = ledger.get_run(run_id)
    assert run.status is RunStatus.SUCCESS and run.params == {"q": "rust", "pages": 3}
    assert run.triggered_by == "dashboard" and run.worker_id == "browser-worker"
    assert run.counters["offers"] == 30

    page.click("button:has-text('Re-run')")
    page.wait_for_load_state("load")
    page.wait_for_function(
        "() => document.querySelector('#live h1').textContent.includes('success')",
        timeout=30_000,
    )
    assert f"re-run of #{run_id}" in page.inner_text(".page-head")
    shot(page, "rerun-finished")

    page.goto(base + job_path)
    page.fill("input[name=start]", "2026-01-01")
    page.fill("input[name=end]", "2026-01-06")
    page.click("button:has-text('Backfill')")
    page.wait_for_load_state("load")
    assert "/backfills/" in page.url
    page.wait_for_function(
        "() => document.getElementById('backfill-progress').textContent.startsWith('5 done')",
        timeout=30_000,
    )
    shot(page, "backfill-done")
    assert "done" in page.inner_text("h1")
    page.goto(base + "/backfills")
    shot(page, "backfills")
    assert problems == []
    context.close()
