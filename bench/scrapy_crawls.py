"""``python -m bench.scrapy_crawls DATABASE_URL CRAWLS``: crawls of one page
(a ``data:`` URL, so no network), alternating batches without and with
runtrack's extension in one reactor; prints the per-crawl seconds as JSON.
A subprocess of the integrations section: a Twisted reactor runs once per
process."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.crawler import AsyncCrawlerRunner
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.reactor import install_reactor

PAGE = "data:text/html,<h1>one page</h1>"


class OnePage(scrapy.Spider):
    name = "bench_one_page"

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request(PAGE)

    def parse(self, response: Any) -> Iterator[dict[str, str]]:
        yield {"title": response.css("h1::text").get() or ""}


def settings(database: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"LOG_ENABLED": False, "TELNETCONSOLE_ENABLED": False}
    if database:
        found["EXTENSIONS"] = {"runtrack.integrations.scrapy.RuntrackExtension": 500}
        found["RUNTRACK_DATABASE_URL"] = database
        found["RUNTRACK_JOB"] = "bench:crawl"
    return found


async def crawls(database: str, count: int, batch: int) -> dict[str, dict[str, Any]]:
    """Per-crawl wall seconds and total CPU seconds of each side."""
    sides = {
        "floor": AsyncCrawlerRunner(settings(None)),
        "runtrack": AsyncCrawlerRunner(settings(database)),
    }
    found: dict[str, dict[str, Any]] = {name: {"times": [], "cpu": 0.0} for name in sides}
    for runner in sides.values():  # warm: imports, the shared ledger, compiled statements
        for _ in range(3):
            await runner.crawl(OnePage)
    for rep in range(count // batch):
        order = list(sides) if rep % 2 == 0 else list(reversed(sides))
        for name in order:
            cpu = time.process_time()
            for _ in range(batch):
                began = time.perf_counter()
                await sides[name].crawl(OnePage)
                found[name]["times"].append(time.perf_counter() - began)
            found[name]["cpu"] += time.process_time() - cpu
    return found


def main() -> None:
    database, count = sys.argv[1], int(sys.argv[2])
    install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")
    from twisted.internet import reactor

    result: dict[str, dict[str, Any]] = {}

    async def go() -> None:
        try:
            result.update(await crawls(database, count, batch=5))
        finally:
            reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(lambda: deferred_from_coro(go()))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    if not result:
        sys.exit("the crawls failed")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
