"""The dashboard on a wall screen and on a phone, in Debian's headless
Chromium: it refreshes itself even when nothing is running (not while the
tab is hidden), never scrolls sideways at 420 px, links providers, finds jobs
by a part of their key and runs by their error, says how to write a time, and
its /docs works without internet.

Screenshots at 1400 and 420 px go to ``test-output/screenshots-edges/``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from dashboard_seed import JOB_OFFERS, TOKEN, Seeded, seed_history
from playwright.sync_api import Browser, Page, Route
from test_dashboard_browser import serve

from runtrack import Ledger
from runtrack.api import create_app
from runtrack.config import Settings
from runtrack.web.pages import templating

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots-edges"


def _served(ledger: Ledger) -> Iterator[str]:
    server, thread, base = serve(create_app(ledger, Settings(api_token=TOKEN).validated()))
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Ledger, Seeded]]:
    """A seeded history (every status, hostile names, pauses), served."""
    url = f"sqlite:///{tmp_path_factory.mktemp('edges')}/ledger.db"
    with Ledger(url, heartbeat_interval=0.05) as ledger:
        seeded = seed_history(url, ledger.now())
        for base in _served(ledger):
            yield base, ledger, seeded


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[tuple[str, Ledger]]:
    """A ledger with one finished run and nothing active, served."""
    with Ledger(f"sqlite:///{tmp_path}/quiet.db", heartbeat_interval=0.05) as ledger:
        with ledger.run("crm:contacts", provider="crm") as run:
            run.count("contacts", 3)
        for base in _served(ledger):
            yield base, ledger


def _page(browser: Browser, width: int) -> Page:
    return browser.new_context(viewport={"width": width, "height": 900}).new_page()


def _sideways(page: Page) -> int:
    """How many pixels the page is wider than the window (0: no sideways scroll)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def test_no_page_scrolls_sideways_at_420_px(
    browser: Browser, history: tuple[str, Ledger, Seeded]
) -> None:
    base, _, seeded = history
    paths = {
        "overview": "/",
        "runs": "/runs",
        "run-failed": f"/runs/{seeded.failed}",
        "run-partial": f"/runs/{seeded.partial}",
        "job": f"/jobs/{quote(JOB_OFFERS, safe='')}",
        "providers": "/providers",
        "session": "/session",
    }
    for width in (1400, 420):
        page = _page(browser, width)
        for name, path in paths.items():
            response = page.goto(base + path)
            assert response is not None and response.ok, path
            page.screenshot(path=SHOTS / f"{name}-{width}.png", full_page=True)
            assert _sideways(page) <= 0, (name, width, _sideways(page))
            # The header's sign-in link and the page's statuses stay in view.
            signin = page.locator("header a[href*='/session']").first
            box = signin.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width, (name, width, box)
        page.context.close()


def test_an_idle_overview_refreshes_itself_and_waits_while_hidden(
    browser: Browser, quiet: tuple[str, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, ledger = quiet
    monkeypatch.setattr(templating, "IDLE_REFRESH_SECONDS", 1)
    page = _page(browser, 1400)
    fetches: list[str] = []
    page.on("request", lambda r: fetches.append(r.url) if r.resource_type == "fetch" else None)
    page.goto(base + "/")
    assert page.get_attribute("#live", "data-live") == "1"
    try:
        with ledger.run("board:search", provider="jobboard"):
            raise RuntimeError("HTTP 502 from the board")
    except RuntimeError:
        pass
    page.wait_for_selector("#live >> text=board:search", timeout=10_000)
    page.screenshot(path=SHOTS / "overview-refreshed-1400.png", full_page=True)
    # Hidden: no fetch at all; shown again: one at once.
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    time.sleep(1.5)  # the fetch in flight, if any, lands
    before = len(fetches)
    time.sleep(3)
    assert len(fetches) == before, "a hidden tab kept fetching"
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    deadline = time.monotonic() + 0.8
    while len(fetches) == before and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(fetches) > before, "no refresh when the tab was shown again"
    page.context.close()


def test_provider_names_link_to_the_provider(
    browser: Browser, history: tuple[str, Ledger, Seeded]
) -> None:
    base, _, _ = history
    page = _page(browser, 1400)
    page.goto(base + "/runs")
    page.locator("table.runs a[href*='/providers#provider-infojobs']").first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/providers#provider-infojobs")
    assert page.locator("tr#provider-infojobs").count() == 1
    page.goto(base + "/")
    assert page.locator("a[href$='/providers#provider-amazon']").count() >= 1
    page.context.close()


def _listed_jobs(page: Page) -> set[str]:
    return set(page.locator("table.runs td.key a").all_inner_texts())


def test_the_job_filter_matches_a_part_of_the_key_and_errors_are_searchable(
    browser: Browser, history: tuple[str, Ledger, Seeded]
) -> None:
    base, ledger, seeded = history
    page = _page(browser, 1400)
    page.goto(base + "/runs")
    page.fill("input[name=job]", "madrid")
    page.click("button:has-text('Apply')")
    page.wait_for_load_state("load")
    assert _listed_jobs(page) == {JOB_OFFERS}, page.url
    failed = ledger.get_run(seeded.failed)
    assert failed.error_message
    word = failed.error_message.split()[-1].upper()  # any case, any part
    page.goto(base + "/runs")
    page.fill("input[name=q]", word)
    page.click("button:has-text('Apply')")
    page.wait_for_load_state("load")
    ids = page.locator("tr[data-run-id]").evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert str(seeded.failed) in ids
    for run_id in ids:
        message = ledger.get_run(int(run_id)).error_message or ""
        assert word.lower() in message.lower()
    page.screenshot(path=SHOTS / "runs-error-search-1400.png", full_page=True)
    page.context.close()


def test_date_inputs_say_their_format_and_zone(
    browser: Browser, history: tuple[str, Ledger, Seeded]
) -> None:
    base, _, _ = history
    page = _page(browser, 420)
    page.goto(base + "/runs")
    for name in ("since", "until"):
        described = page.get_attribute(f"input[name={name}]", "aria-describedby")
        assert described == "time-format"
    hint = page.inner_text("#time-format")
    assert "UTC" in hint and "2026-01-31 14:05:00" in hint
    assert page.locator("#time-format").is_visible()
    page.context.close()


def test_docs_work_without_internet(browser: Browser, quiet: tuple[str, Ledger]) -> None:
    base, _ = quiet
    page = _page(browser, 1400)
    outside: list[str] = []

    def cut_off(route: Route) -> None:  # a closed network: nothing but this server
        outside.append(route.request.url)
        route.abort()

    page.route(re.compile(rf"^(?!{re.escape(base)}/).*"), cut_off)
    page.goto(base + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    assert "runtrack" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() > 10
    page.screenshot(path=SHOTS / "docs-offline-1400.png")
    assert outside == []
    page.context.close()
