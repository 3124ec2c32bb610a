"""A real Scrapy crawl (CrawlerProcess) with runtrack's extension, run by the
tests as ``python scrapy_crawl.py DATABASE_URL START_URL``."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess


class Unprintable(ValueError):
    def __str__(self) -> str:
        raise ZeroDivisionError


#: Issue 15 (F1): exceptions whose text no database takes as it is.
ODD = {
    "/odd/empty": ValueError(),
    "/odd/long": ValueError("x" * 20_000),
    "/odd/nul": ValueError("bad\x00byte"),
    "/odd/unprintable": Unprintable(),
}


class Site(scrapy.Spider):
    name = "site"

    def __init__(self, start_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url

    async def start(self) -> AsyncIterator[Any]:
        window = self.runtrack_window
        print(
            "offered",
            json.dumps(
                {
                    "window_start": window.start and window.start.isoformat(),
                    "window_end": window.end and window.end.isoformat(),
                    "checkpoint": self.runtrack_checkpoint,
                }
            ),
            flush=True,
        )
        yield scrapy.Request(self.start_url)

    def parse(self, response: Any) -> Iterator[Any]:
        if response.url.endswith("/crash"):
            raise ValueError("unexpected markup")
        for path, error in ODD.items():
            if response.url.endswith(path):
                raise error
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, self.parse)
        title = response.css("h1::text").get()
        if title:
            self.runtrack_run.save_checkpoint({"last_page": response.url})
            yield {"url": response.url, "title": title}


def main() -> None:
    database, start_url = sys.argv[1:3]
    process = CrawlerProcess(
        settings={
            "EXTENSIONS": {"runtrack.integrations.scrapy.RuntrackExtension": 500},
            "RUNTRACK_DATABASE_URL": database,
            "RUNTRACK_HEARTBEAT_INTERVAL": 0.1,
            "RUNTRACK_JOB": "crawl:site",
            "RUNTRACK_PROVIDER": "example",
            "RUNTRACK_ITEMS": True,
            "RUNTRACK_STATS_INTERVAL": 0.1,
            "RETRY_TIMES": 1,
            "ROBOTSTXT_OBEY": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "INFO",
            "CONCURRENT_REQUESTS": 4,
        }
    )
    process.crawl(Site, start_url=start_url)
    process.start()


if __name__ == "__main__":
    main()
