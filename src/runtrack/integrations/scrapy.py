"""Scrapy: an extension that makes each crawl one run.

Enable it in the project's settings::

    EXTENSIONS = {"runtrack.integrations.scrapy.RuntrackExtension": 500}
    RUNTRACK_DATABASE_URL = "sqlite:///runtrack.db"  # else RUNTRACK_* from the environment

Scrapy's stats become the run's counters (copied at every heartbeat interval
and at close), a callback's exception is a run error, a page whose last
response was a 5xx is a run error, and ``RUNTRACK_ITEMS = True`` records each
scraped item (``RUNTRACK_ITEM_KEY`` names its key field, else the page URL).
``RUNTRACK_JOB`` (default: the spider's name) and ``RUNTRACK_PROVIDER`` name
the job; ``RUNTRACK_HEARTBEAT_INTERVAL`` and ``RUNTRACK_STATS_INTERVAL``
(default: the heartbeat's) set how often the run is written and the stats copied.
The ``RUNTRACK_*`` environment is read once per process.
The close reason decides the status: ``finished`` (and Scrapy's
``closespider_*`` limits) end ``success``, or ``partial`` when the crawl had
errors (a callback raised, a page ended 5xx, an item failed, Scrapy logged an
ERROR line, the spider called ``self.runtrack_run.error(...)``); ``shutdown``
and ``cancelled`` end ``cancelled``; ``closespider_errorcount`` ends
``failed``. A runtrack cancel request closes the spider (reason
``cancelled``) within one interval.

The spider gets ``runtrack_run`` (the run handle: see :class:`CrawlRun`),
``runtrack_window`` (the slice of source data this crawl covers) and
``runtrack_checkpoint`` (the job's checkpoint from its last good run) when it
opens, before its start requests are read. The run is not bound to
:func:`runtrack.current_run` (a crawl's callbacks do not share one context):
use ``self.runtrack_run``.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from itemadapter import ItemAdapter
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import deferred_from_coro
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from runtrack.config import Settings
from runtrack.errors import RunCancelled, RuntrackError
from runtrack.failures import described
from runtrack.ledger import Ledger
from runtrack.run import Run

__all__ = ["CrawlFailed", "CrawlRun", "RuntrackExtension", "environment_settings", "shared_ledger"]

log = logging.getLogger("runtrack.scrapy")

CANCELLING = {"shutdown", "cancelled"}
FAILING = {"closespider_errorcount"}


class CrawlFailed(Exception):
    """The spider was closed for its errors (``closespider_errorcount``)."""


class CrawlRun:
    """The run as a spider sees it: the :class:`runtrack.Run` (``count``,
    ``item``, ``error``, ``save_checkpoint``, ``window``, ...), except that a
    cancel request closes the spider instead of raising ``RunCancelled`` in a
    callback (Scrapy only survives ``Exception`` there; the call is dropped)."""

    def __init__(self, run: Run, on_cancel: Callable[[], None]) -> None:
        self._run = run
        self._on_cancel = on_cancel

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._run, name)
        if not callable(found):
            return found

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return found(*args, **kwargs)
            except RunCancelled:
                self._on_cancel()
                return None

        return guarded


class RuntrackExtension:
    """Records each crawl of the crawler's spider as one run."""

    def __init__(self, crawler: Crawler, ledger: Ledger) -> None:
        self.crawler = crawler
        self.ledger = ledger
        settings = crawler.settings
        self.job: str | None = settings.get("RUNTRACK_JOB")
        self.provider: str | None = settings.get("RUNTRACK_PROVIDER")
        self.items = settings.getbool("RUNTRACK_ITEMS")
        self.item_key: str = settings.get("RUNTRACK_ITEM_KEY", "url")
        self.interval = settings.getfloat("RUNTRACK_STATS_INTERVAL", ledger.heartbeat_interval)
        self.run: Run | None = None
        self.errors = 0
        self._failing_pages: dict[str, int] = {}  # URL -> 5xx status of its last response
        self._sync = LoopingCall(self._copy_stats)
        self._cancelling = False
        self._block: tuple[AbstractContextManager[Run], contextvars.Context] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RuntrackExtension:
        env = environment_settings()
        url = crawler.settings.get("RUNTRACK_DATABASE_URL") or env.database_url
        beat = crawler.settings.getfloat("RUNTRACK_HEARTBEAT_INTERVAL", env.heartbeat_interval)
        ext = cls(crawler, shared_ledger(url, beat))
        # Each connection costs a weak reference and a registry entry per
        # crawl: only the signals this crawl needs.
        connect = crawler.signals.connect
        connect(ext.spider_opened, signal=signals.spider_opened)
        connect(ext.spider_closed, signal=signals.spider_closed)
        connect(ext.spider_error, signal=signals.spider_error)
        connect(ext.response_received, signal=signals.response_received)
        connect(ext.item_error, signal=signals.item_error)  # an error even unrecorded
        if ext.items:
            connect(ext.item_scraped, signal=signals.item_scraped)
            connect(ext.item_dropped, signal=signals.item_dropped)
        return ext

    # -- opening and closing -------------------------------------------------------

    def spider_opened(self, spider: Spider) -> None:
        # The run block is entered and left in a context of its own: Scrapy
        # sends spider_opened and spider_closed from different asyncio tasks.
        context = contextvars.copy_context()
        try:
            block = self.ledger.run(
                self.job or spider.name, provider=self.provider, params={"spider": spider.name}
            )
            run = context.run(block.__enter__)
        except RuntrackError as refused:  # JobBusy above all: one crawl of a job at a time
            log.warning("crawl of %s not started: %s", spider.name, refused)
            raise CloseSpider("runtrack_refused") from refused
        self.run, self._block = run, (block, context)
        spider.runtrack_run = CrawlRun(run, self._close_for_cancel)  # type: ignore[attr-defined]
        spider.runtrack_window = run.window  # type: ignore[attr-defined]
        spider.runtrack_checkpoint = run.previous_checkpoint  # type: ignore[attr-defined]
        self._sync.start(self.interval, now=False)

    def spider_closed(self, spider: Spider, reason: str) -> None:
        run, self.run = self.run, None
        if run is None or self._block is None:
            return
        if self._sync.running:
            self._sync.stop()
        self._copy_stats(run)
        self._record_errors(run)
        if reason not in CANCELLING | FAILING | {"finished"}:
            self._guarded(run.note, f"spider closed: {reason}")
        (block, context), self._block = self._block, None
        ending = self._ending(run, reason)
        context.run(block.__exit__, type(ending) if ending else None, ending, None)

    def _ending(self, run: Run, reason: str) -> BaseException | None:
        """How the run block ends: None (success, or partial after errors),
        ``RunCancelled`` (cancelled) or ``CrawlFailed``."""
        if self._cancelling or (reason == "cancelled" and run.cancel_requested):
            return RunCancelled(run.id, "runtrack cancel request: spider closed", "cancelled")
        if reason in CANCELLING:
            return RunCancelled(run.id, f"spider closed: {reason}", reason)
        if reason in FAILING:
            return CrawlFailed(f"spider closed: {reason}")
        return None

    def _record_errors(self, run: Run) -> None:
        """Pages whose last answer was a 5xx, and ERROR lines Scrapy logged
        beyond the errors already recorded (a download that failed, say)."""
        for url, code in self._failing_pages.items():
            self._guarded(run.error, f"HTTP {code}", url=url)
        logged = int(self.crawler.stats.get_value("log_count/ERROR", 0) or 0)
        unexplained = logged - self.errors - len(self._failing_pages)
        if unexplained > 0:
            self._guarded(run.error, f"Scrapy logged {unexplained} more ERROR lines (see its log)")

    # -- during the crawl ------------------------------------------------------------

    def _copy_stats(self, run: Run | None = None) -> None:
        """Scrapy's numeric stats onto the run's counters (the heartbeat
        writes them); a cancel request closes the spider."""
        run = run or self.run
        if run is None:
            return
        for name, value in self.crawler.stats.get_stats().items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self._guarded(run.set_counter, name, value)
        if run.cancel_requested:
            self._close_for_cancel()

    def spider_error(self, failure: Failure, response: Any, spider: Spider) -> None:
        if self.run is not None:
            self.errors += 1
            error = failure.value
            text = _described(error)  # whatever its message is, or its __str__ does
            self._guarded(self.run.error, text, url=response.url, type=type(error).__name__)

    def response_received(self, response: Any, request: Any, spider: Spider) -> None:
        # Retries fetch the same URL again: the last response decides.
        if response.status >= 500:
            self._failing_pages[response.url] = response.status
        else:
            self._failing_pages.pop(response.url, None)

    def item_scraped(self, item: Any, response: Any, spider: Spider) -> None:
        self._item(item, response, "success", None)

    def item_dropped(
        self, item: Any, response: Any, exception: BaseException, spider: Spider
    ) -> None:
        self._item(item, response, "skipped", described(exception))

    def item_error(self, item: Any, response: Any, spider: Spider, failure: Failure) -> None:
        self.errors += 1
        self._item(item, response, "error", _described(failure.value))

    def _item(self, item: Any, response: Any, status: str, error: str | None) -> None:
        if self.run is None or not self.items:
            return
        url = getattr(response, "url", None)
        key = ItemAdapter(item).get(self.item_key) or url
        self._guarded(self.run.item, str(key), status, error=error, source=url)

    def _guarded(self, call: Any, *args: Any, **kwargs: Any) -> None:
        """Call the run handle; a cancel request it raises closes the spider."""
        try:
            call(*args, **kwargs)
        except RunCancelled:
            self._close_for_cancel()

    def _close_for_cancel(self) -> None:
        if self._cancelling or self.crawler.engine is None:
            return
        self._cancelling = True
        log.info("runtrack cancel request: closing the spider")
        deferred_from_coro(self.crawler.engine.close_spider_async(reason="cancelled"))


@functools.cache
def environment_settings() -> Settings:
    """The ``RUNTRACK_*`` environment, read once per process (the extension
    is built anew for every crawl; the ledger it opens is shared anyway)."""
    return Settings.from_env()


@functools.cache
def shared_ledger(url: str, heartbeat_interval: float) -> Ledger:
    """One ledger per database for the whole process: Scrapy deep-copies its
    settings (so they can only name the database) and builds the extension
    anew for every crawl, and opening a ledger costs tens of milliseconds.
    Its heartbeat thread stops at interpreter exit."""
    settings = replace(
        environment_settings(), database_url=url, heartbeat_interval=heartbeat_interval
    )
    return Ledger.from_settings(settings)


def _described(error: BaseException | None) -> str:
    return "unknown error" if error is None else described(error)
