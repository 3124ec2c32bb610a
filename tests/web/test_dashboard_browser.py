"""The dashboard in a real browser: Debian's headless Chromium, driven by
Playwright, against uvicorn on 127.0.0.1 serving a seeded SQLite ledger.

Every page is opened and screenshotted into ``test-output/screenshots/`` (for
a reviewer to look at); the browser console must stay clean; hostile strings
must show as text and never run; a live run's progress bar must advance on
its own; cancel must fail without the API token and work with it.
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from chromium import SCREENSHOTS
from dashboard_seed import (
    JOB_OFFERS,
    JOB_PRICES,
    TOKEN,
    XSS_IMG,
    XSS_JOB,
    XSS_PROVIDER,
    XSS_SCRIPT,
    LiveRun,
    Seeded,
    seed_history,
)
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

from runtrack import Ledger, RunStatus
from runtrack.api import create_app
from runtrack.config import Settings

pytestmark = pytest.mark.browser


@dataclass
class Site:
    """The live server and what was seeded into it."""

    base: str
    url: str
    ledger: Ledger
    seeded: Seeded
    logs: list[str] = field(default_factory=list)


class LogCapture(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(self.format(record))


def serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="info", access_log=True, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard')}/ledger.db"
    logs: list[str] = []
    handler = LogCapture(logs)
    with Ledger(url, heartbeat_interval=0.05) as ledger:
        seeded = seed_history(url, ledger.now())
        server, thread, base = serve(create_app(ledger, Settings(api_token=TOKEN).validated()))
        # After uvicorn configured its loggers (it replaces their handlers).
        loggers = [logging.getLogger(name) for name in ("runtrack", "uvicorn", "uvicorn.access")]
        for logger in loggers:
            logger.addHandler(handler)
        try:
            yield Site(base, url, ledger, seeded, logs)
        finally:
            server.should_exit = True
            thread.join(10)
            for logger in loggers:
                logger.removeHandler(handler)
    assert any("POST /session" in line for line in logs), "the access log was not captured"
    assert not [line for line in logs if TOKEN in line], "the token reached a log"


@pytest.fixture(scope="module", autouse=True)
def screenshots() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


class Watched:
    """A page whose console errors, uncaught exceptions and dialogs are kept."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"pageerror: {error}"))
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"{message.type}: {message.text}")

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, site: Site, path: str, shot: str | None = None) -> Page:
        response = self.page.goto(site.base + path)
        assert response is not None and response.ok, (path, response and response.status)
        self.settle(shot)
        return self.page

    def settle(self, shot: str | None = None, *, expect_status: int | None = None) -> None:
        """Check the page as it stands: clean console (but for the one
        expected HTTP error), no dialog, no token; then screenshot it."""
        self.page.wait_for_load_state("load")
        allowed = f"status of {expect_status}" if expect_status else None
        unexpected = [p for p in self.problems if not (allowed and allowed in p)]
        assert unexpected == [], unexpected
        assert self.dialogs == []
        assert TOKEN not in self.page.content()
        self.problems.clear()
        if shot:
            self.page.screenshot(path=SCREENSHOTS / f"{shot}.png", full_page=True)


@pytest.fixture
def tab(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    watched = Watched(context.new_page())
    yield watched
    assert watched.dialogs == [], "a dialog fired: some script ran"
    context.close()


def listed(page: Page) -> list[int]:
    return [
        int(i)
        for i in page.locator("tr[data-run-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.runId)"
        )
    ]


def sign_in(tab: Watched, site: Site, token: str, *, next_path: str) -> None:
    tab.open(site, f"/session?next={quote(next_path)}")
    tab.page.fill("input[name=token]", token)
    tab.page.click("button:has-text('Sign in')")


def test_every_page_opens_cleanly(site: Site, tab: Watched) -> None:
    seeded = site.seeded
    overview = tab.open(site, "/", "overview")
    assert overview.locator("table.jobs tbody tr").count() == len(seeded.jobs)
    assert overview.locator(".strip a.cell").count() > 30
    tab.open(site, "/runs", "runs")
    tab.open(site, f"/runs/{seeded.partial}", "run-partial")
    tab.open(site, f"/runs/{seeded.retry}", "run-retry")
    tab.open(site, f"/runs/{seeded.stale}", "run-stale")
    job = tab.open(site, "/jobs/" + quote(JOB_OFFERS, safe=""), "job-offers")
    assert job.locator("svg.chart").count() == 2
    assert job.locator("svg.chart circle.mark").count() > 30
    tab.open(site, "/jobs/" + quote(JOB_PRICES, safe=""), "job-prices")
    tab.open(site, "/providers", "providers")
    tab.open(site, "/session", "session")


def test_filter_paginate_and_open_a_run(site: Site, tab: Watched) -> None:
    page = tab.open(site, "/runs")
    page.fill("input[name=job]", JOB_OFFERS)
    page.check("input[name=status][value=success]")
    page.select_option("select[name=limit]", "20")
    page.click("button:has-text('Apply')")
    tab.settle("runs-filtered")
    first = listed(page)
    assert len(first) == 20
    for run_id in first:
        run = site.ledger.get_run(run_id)
        assert run.job == JOB_OFFERS and run.status is RunStatus.SUCCESS
    page.click("a[rel=next]")
    tab.settle("runs-page-2")
    second = listed(page)
    assert second and max(second) < min(first)
    assert "page 2" in page.inner_text(".page-head")
    page.click("text=« Newest")
    tab.settle()
    assert listed(page) == first
    page.click(f"tr[data-run-id='{first[0]}'] a[href$='/runs/{first[0]}']")
    tab.settle()
    assert page.inner_text("h1").startswith(f"Run #{first[0]}")
    page.select_option("select[name=item_status]", "error")
    page.click("button:has-text('Filter items')")
    tab.settle()
    assert "No item matches these filters." in page.inner_text("main")


def test_the_run_filters_line_up(site: Site, tab: Watched) -> None:
    """The first row of filters (text, search, select, text): one top, one
    height, one border (the search box once sat lower, thinner, inset)."""
    page = tab.open(site, "/runs")
    shown = []
    for name in ("job", "q", "provider", "label"):
        field = page.locator(f"form.filters [name={name}]")
        box = field.bounding_box()
        assert box is not None, name
        border = field.evaluate(
            "e => { const s = getComputedStyle(e);"
            " return [s.borderTopStyle, s.borderTopWidth, s.borderTopColor, s.borderRadius]; }"
        )
        shown.append((round(box["y"]), round(box["height"]), tuple(border)))
    assert len(set(shown)) == 1, shown


def test_bad_filter_is_explained(site: Site, tab: Watched) -> None:
    tab.page.goto(site.base + "/runs?status=exploded")
    tab.settle("runs-bad-filter", expect_status=400)
    assert "Filter not applied: status" in tab.page.inner_text(".banner.error")


def test_hostile_strings_are_text_and_never_run(site: Site, tab: Watched) -> None:
    xss_partial = site.seeded.xss_failed - 1
    pages = {
        "xss-overview": "/",
        "xss-run-failed": f"/runs/{site.seeded.xss_failed}",
        "xss-run-items": f"/runs/{xss_partial}",
        "xss-job": "/jobs/" + quote(XSS_JOB, safe=""),
        "xss-providers": "/providers",
    }
    for shot, path in pages.items():
        page = tab.open(site, path, shot)
        text = page.inner_text("body")
        assert XSS_SCRIPT in text, path
        assert page.locator("img[src='x']").count() == 0, path
        assert page.evaluate("document.querySelectorAll('main script').length") == 0
    run_page = tab.open(site, f"/runs/{xss_partial}")
    assert XSS_IMG in run_page.inner_text("table.items")
    assert XSS_PROVIDER in run_page.inner_text(".page-head")
    assert tab.dialogs == []


def test_progress_bar_advances_by_itself(site: Site, tab: Watched) -> None:
    with LiveRun(site.url, total=400, step=0.05) as live:
        page = tab.open(site, f"/runs/{live.run_id}", "run-live")
        assert page.get_attribute("#live", "data-live") is not None
        before = float(page.get_attribute("#live progress", "value") or 0)
        # No reload: the page's own refresh swaps in fresh progress.
        page.wait_for_function(
            f"() => document.querySelector('#live progress').value > {before}", timeout=15_000
        )
        after = float(page.get_attribute("#live progress", "value") or 0)
        assert after > before
        assert "ETA" in page.inner_text("#live .progress")
        tab.settle("run-live-advanced")
        runs = tab.open(site, "/runs", "runs-live")
        assert runs.locator(f"tr[data-run-id='{live.run_id}'] progress").count() == 1


def test_cancel_needs_the_token_and_then_stops_the_run(site: Site, tab: Watched) -> None:
    with LiveRun(site.url, total=2000, step=0.05) as live:
        path = f"/runs/{live.run_id}"
        page = tab.open(site, path)
        page.fill("input[name=reason]", "operator test")
        page.click("button:has-text('Cancel this run')")
        tab.settle("cancel-refused", expect_status=403)
        assert "Not cancelled: this needs the API token" in page.inner_text(".banner.error")
        assert site.ledger.get_run(live.run_id).cancel_requested_at is None

        sign_in(tab, site, "not-the-token-0123456789", next_path=path)
        tab.settle("sign-in-refused", expect_status=403)
        assert "not valid" in page.inner_text(".banner.error")

        sign_in(tab, site, TOKEN, next_path=path)
        tab.settle()
        assert page.url.endswith(path)
        cookie = next(c for c in page.context.cookies() if c["name"] == "runtrack_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert TOKEN not in cookie["value"]
        assert page.evaluate("document.cookie") == ""  # invisible to scripts

        page.click("button:has-text('Cancel this run')")
        tab.settle("cancel-requested")
        assert "Cancel requested" in page.inner_text(".banner.notice")
        assert live.join(10), "the worker did not stop"
        assert live.cancelled
        # The page follows the run to its end, then stops refreshing.
        page.wait_for_function(
            "() => !document.getElementById('live').hasAttribute('data-live')", timeout=15_000
        )
        assert "cancelled" in page.inner_text("h1")
        tab.settle("run-cancelled")
        run = site.ledger.get_run(live.run_id)
        assert run.status is RunStatus.CANCELLED and run.cancel_reason is None
        assert run.cancel_requested_by == "dashboard"


def test_resume_a_provider(site: Site, tab: Watched) -> None:
    assert site.ledger.paused("amazon") is not None
    sign_in(tab, site, TOKEN, next_path="/providers")
    tab.settle()
    row = tab.page.locator("tr", has_text="429 Too Many Requests")
    row.locator("button:has-text('Resume now')").click()
    tab.settle("provider-resumed")
    assert "Resumed amazon" in tab.page.inner_text(".banner.notice")
    assert site.ledger.paused("amazon") is None


def test_pages_read_without_javascript(site: Site, browser: Browser) -> None:
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1400, "height": 900}
    )
    page = context.new_page()
    for path in ("/", "/runs", f"/runs/{site.seeded.partial}", "/providers"):
        response = page.goto(site.base + path)
        assert response is not None and response.ok
        assert page.locator("main h1").count() == 1
    page.goto(site.base + "/runs?status=failed")
    assert re.search(r"infojobs answered 503", page.inner_text("main"))
    page.screenshot(path=SCREENSHOTS / "runs-no-javascript.png", full_page=True)
    context.close()
