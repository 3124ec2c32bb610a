"""Scrapy: real crawls (``CrawlerProcess`` in a subprocess) of pages this test
serves on 127.0.0.1, some answering 500 and 404, with the extension on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runtrack import Ledger, RunRecord

pytest.importorskip("scrapy")

HERE = Path(__file__).parent
PAGES = {
    "/": '<a href="/page/1">1</a> <a href="/page/2">2</a> <a href="/page/3">3</a> '
    '<a href="/missing">gone</a> <a href="/broken">500</a> <a href="/crash">bad</a>',
    "/page/1": "<h1>one</h1>",
    "/page/2": "<h1>two</h1>",
    "/page/3": "<h1>three</h1>",
    "/crash": "<h1>never parsed</h1>",
    "/clean": '<h1>clean</h1> <a href="/page/1">1</a>',
    "/odd": " ".join(
        f'<a href="/odd/{name}">{name}</a>' for name in ("empty", "long", "nul", "unprintable")
    ),
}
PAGES.update({f"/odd/{name}": "<p>odd</p>" for name in ("empty", "long", "nul", "unprintable")})


class Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/broken":
            self._answer(500, "<p>upstream error</p>")
        elif self.path.startswith("/chain/"):  # endless, for the cancel tests
            time.sleep(0.02)
            n = int(self.path.rsplit("/", 1)[1])
            self._answer(200, f'<h1>chain {n}</h1> <a href="/chain/{n + 1}">next</a>')
        elif self.path in PAGES:
            self._answer(200, PAGES[self.path])
        else:
            self._answer(404, "<p>not found</p>")

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def crawl(db_url: str, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "scrapy_crawl.py"), db_url, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-4000:]
    (line,) = [line for line in out.splitlines() if line.startswith("offered ")]
    return dict(json.loads(line.removeprefix("offered ")))


def until(check: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def scraped(ledger: Ledger) -> int:
    """Items the active crawl has scraped so far, as its counters say."""
    active = ledger.active_runs("crawl:site")
    return active[0].counters.get("item_scraped_count", 0) if active else 0


def only_run(ledger: Ledger) -> RunRecord:
    (run,) = ledger.list_runs(job="crawl:site").items
    return run


def test_a_crawl_is_a_run_with_stats_items_errors_window_and_checkpoint(
    ledger: Ledger, db_url: str, site: str
) -> None:
    offered = finish(crawl(db_url, f"{site}/"))
    run = only_run(ledger)
    assert (run.status, run.provider, run.params) == ("partial", "example", {"spider": "site"})
    c = run.counters
    assert c["item_scraped_count"] == 3
    assert c["downloader/response_status_count/200"] == 5  # index, 3 pages, the crash page
    assert c["downloader/response_status_count/404"] == 1
    assert c["downloader/response_status_count/500"] == 2  # retried once, then given up
    assert c["spider_exceptions/ValueError"] == 1
    assert run.items == {"success": 3, "not_found": 0, "skipped": 0, "error": 0}
    keys = {item.key for item in ledger.list_items(run.id).items}
    assert keys == {f"{site}/page/{n}" for n in (1, 2, 3)}
    errors = (run.error_details or {})["errors"]
    assert {"message": "unexpected markup", "url": f"{site}/crash", "type": "ValueError"} in errors
    assert {"message": "HTTP 500", "url": f"{site}/broken"} in errors
    assert run.checkpoint is not None and run.checkpoint["last_page"].startswith(f"{site}/page/")
    assert offered["checkpoint"] is None  # the job's first run
    assert offered["window_end"] == run.window_end.isoformat()  # type: ignore[union-attr]

    # The next crawl starts where this one's window ended, with its checkpoint.
    offered = finish(crawl(db_url, f"{site}/clean"))
    latest, first = ledger.list_runs(job="crawl:site").items
    assert latest.status == "success" and latest.counters["item_scraped_count"] == 2
    assert offered["checkpoint"] == first.checkpoint
    assert datetime.fromisoformat(str(offered["window_start"])) == first.window_end


def test_a_runtrack_cancel_closes_the_spider_and_a_shutdown_cancels_the_run(
    ledger: Ledger, db_url: str, site: str
) -> None:
    proc = crawl(db_url, f"{site}/chain/0")
    # Scrapy's stats reach the counters at every heartbeat, before the end.
    until(lambda: scraped(ledger) >= 3, "stats on a running crawl")
    ledger.cancel(only_run(ledger).id, by="operator", reason="enough")
    finish(proc)
    run = only_run(ledger)
    assert (run.status, run.error_type) == ("cancelled", "cancelled")
    assert run.counters["item_scraped_count"] >= 3

    proc = crawl(db_url, f"{site}/chain/0")
    # Under way, not just opened: a SIGINT before the spider reads its start
    # requests closes it before it prints what it was offered.
    until(lambda: scraped(ledger) >= 1, "a second crawl under way")
    proc.send_signal(signal.SIGINT)  # Scrapy closes the spider with reason "shutdown"
    finish(proc)
    latest = ledger.list_runs(job="crawl:site").items[0]
    assert (latest.status, latest.error_type) == ("cancelled", "shutdown")


def test_a_crawl_of_a_busy_job_closes_at_once_and_leaves_the_active_run_alone(
    ledger: Ledger, db_url: str, site: str
) -> None:
    with ledger.run("crawl:site") as held:
        proc = crawl(db_url, f"{site}/")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-4000:]
        assert "runtrack_refused" in err and "offered" not in out
    assert [run.id for run in ledger.list_runs(job="crawl:site").items] == [held.id]


def test_a_spider_error_is_recorded_whatever_its_message_is(
    ledger: Ledger, db_url: str, site: str
) -> None:
    """Issue 15 (F1): an empty message, one over 10,000 characters, a NUL and
    a ``__str__`` that raises each made the extension's handler raise, so the
    error was never recorded."""
    finish(crawl(db_url, f"{site}/odd"))
    run = only_run(ledger)
    assert run.status == "partial"
    errors = {e.get("url", "").rsplit("/", 1)[-1]: e for e in (run.error_details or {})["errors"]}
    assert errors["empty"]["message"] == "ValueError"
    assert len(errors["long"]["message"]) == 10_000
    assert errors["long"]["message"].endswith("[20000 characters in all]")
    assert errors["nul"]["message"] == "bad\\x00byte"
    assert "str() raised ZeroDivisionError" in errors["unprintable"]["message"]
    assert errors["unprintable"]["type"] == "Unprintable"
