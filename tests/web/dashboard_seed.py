"""Helpers of the dashboard tests: a week of history recorded through the
ledger (with a manual clock), hostile strings, and a live run in a thread."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from runtrack import Ledger
from runtrack.clock import ManualClock
from runtrack.errors import RunCancelled

TOKEN = "dashboard-token-0123456789abcdef"
READ_TOKEN = "dashboard-read-0123456789abcdef"

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(2)>'
XSS_JOB = f"evil:{XSS_SCRIPT}"
XSS_PROVIDER = f"p{XSS_IMG}"
XSS_STRINGS = (XSS_SCRIPT, XSS_IMG)

JOB_OFFERS = "infojobs:search:python/madrid"  # '/' in a key, on purpose
JOB_PRICES = "amazon:prices"
JOB_SAM = "sam:discovery"
JOB_STALE = "hubspot:contacts"
JOB_PENDING = "ebay:lookup"
JOB_LIVE = "connector:live"


@dataclass
class Seeded:
    """Ids of the runs :func:`seed_history` recorded, by kind."""

    offers: list[int] = field(default_factory=list)
    partial: int = 0
    failed: int = 0
    retry: int = 0
    xss_failed: int = 0
    stale: int = 0
    pending: int = 0
    jobs: tuple[str, ...] = (JOB_OFFERS, JOB_PRICES, JOB_SAM, XSS_JOB, JOB_STALE, JOB_PENDING)


def _offer_run(ledger: Ledger, clock: ManualClock, rng: random.Random, n: int) -> int:
    """One job-board search: mostly fine, with an occasional 503."""
    try:
        with ledger.run(JOB_OFFERS, provider="infojobs", params={"q": "python"}) as run:
            pages = rng.randint(3, 12)
            run.set_total(pages)
            run.count("pages_fetched", pages)
            run.count("offers_fetched", pages * 20)
            run.count("offers_upserted", pages * rng.randint(5, 20))
            run.advance(pages)
            run.save_checkpoint({"page": pages, "cursor": f"c{n}"})
            clock.advance(rng.randint(40, 300))
            if n % 10 == 5:
                raise ConnectionError("infojobs answered 503 Service Unavailable")
    except ConnectionError:
        pass
    return run.id


def _price_run(ledger: Ledger, clock: ManualClock, n: int) -> int:
    """Eight products on three marketplaces: found, not found, one error."""
    with ledger.run(JOB_PRICES, provider="amazon", params={"batch": n}) as run:
        for product in range(8):
            for market in ("amazon.es", "ebay.es", "pccomponentes"):
                status = "success" if (product + n) % 3 else "not_found"
                if product == 7 and market == "ebay.es":
                    status = "error"
                run.item(
                    f"sku-{product}@{market}",
                    status,
                    group=f"sku-{product}",
                    source=market,
                    data={"price": 10 + product} if status == "success" else None,
                    error="HTTP 500 from marketplace" if status == "error" else None,
                )
        run.count("lookups", 24)
        clock.advance(35 + 5 * n)
    return run.id


def _sam(ledger: Ledger, clock: ManualClock, seeded: Seeded) -> None:
    naics = {"naics": ["541511", "541512"], "notes": XSS_IMG}
    with ledger.run(JOB_SAM, provider="sam", params=naics) as run:
        run.count("notices", 12)
        clock.advance(20)
    try:
        with ledger.run(JOB_SAM, provider="sam", params=naics) as run:
            clock.advance(5)
            raise TimeoutError("sam.gov timed out")
    except TimeoutError:
        pass
    with ledger.run(JOB_SAM, provider="sam", params=naics, attempt=2, retry_of=run.id) as retry:
        retry.count("notices", 3)
        clock.advance(9)
    seeded.retry = retry.id


def _hostile(ledger: Ledger, clock: ManualClock, seeded: Seeded) -> None:
    params = {"query": XSS_SCRIPT, XSS_IMG: [XSS_SCRIPT]}
    with ledger.run(XSS_JOB, provider=XSS_PROVIDER, params=params) as run:
        run.count(XSS_SCRIPT, 1)
        run.item(
            XSS_SCRIPT,
            "error",
            group=XSS_IMG,
            source=XSS_IMG,
            data={"html": XSS_SCRIPT},
            error=XSS_IMG,
        )
        run.note(XSS_SCRIPT)
        run.save_checkpoint({"next": XSS_IMG})
        clock.advance(3)
    try:
        with ledger.run(XSS_JOB, provider=XSS_PROVIDER, params=params):
            clock.advance(2)
            raise ValueError(f"bad page {XSS_SCRIPT} {XSS_IMG}")
    except ValueError:
        pass
    seeded.xss_failed = ledger.list_runs(job=XSS_JOB, limit=1).items[0].id


def seed_history(url: str, now: datetime, *, offers: int = 48, seed: int = 7) -> Seeded:
    """Record ``offers`` + 13 runs over the days before ``now`` through a
    ledger on a manual clock, plus a run left running without heartbeats (stale),
    a pending run and two provider pauses."""
    clock = ManualClock(now - timedelta(hours=3 * offers + 1))
    rng = random.Random(seed)
    seeded = Seeded()
    start = clock.now()
    timeline: list[tuple[datetime, str, int]] = [
        (start + timedelta(hours=3 * n, seconds=rng.randint(0, 600)), "offers", n)
        for n in range(offers)
    ]
    timeline += [
        (start + timedelta(hours=(3 * offers - 10) * n / 6), "prices", n) for n in range(6)
    ]
    timeline += [(now - timedelta(hours=5), "sam", 0), (now - timedelta(hours=2), "hostile", 0)]
    ledger = Ledger(url, clock=clock, heartbeat_interval=3600, migrate=False)
    try:
        for at, kind, n in sorted(timeline):
            clock.set(max(at, clock.now()))
            if kind == "offers":
                run_id = _offer_run(ledger, clock, rng, n)
                if n % 10 == 5:
                    seeded.failed = run_id
                else:
                    seeded.offers.append(run_id)
            elif kind == "prices":
                seeded.partial = _price_run(ledger, clock, n)
            elif kind == "sam":
                _sam(ledger, clock, seeded)
            else:
                _hostile(ledger, clock, seeded)
        clock.set(now - timedelta(minutes=30))
        stale = ledger.start_run(JOB_STALE, provider="hubspot")
        stale.set_total(1000)
        stale.advance(120)
        ledger.heartbeat_now()
        seeded.stale = stale.id
        clock.set(now - timedelta(minutes=2))
        seeded.pending = ledger.create_run(JOB_PENDING, provider="ebay").id
        clock.set(now)
        ledger.pause("amazon", for_="2h", reason=f"429 Too Many Requests {XSS_SCRIPT}", by="runner")
        ledger.pause(XSS_PROVIDER, for_="45m", reason=XSS_IMG)
    finally:
        ledger.close()  # the stale run stays 'running', silent from now on
    return seeded


class LiveRun:
    """A run of :data:`JOB_LIVE` working in a thread on its own ledger
    (0.05 s heartbeats): ``total`` steps of ``step`` seconds each."""

    def __init__(self, url: str, *, total: int = 400, step: float = 0.05) -> None:
        self.ledger = Ledger(url, heartbeat_interval=0.05, migrate=False)
        self.total, self.step = total, step
        self.started = threading.Event()
        self.run_id = 0
        self.cancelled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        try:
            with self.ledger.run(JOB_LIVE, provider="connector") as run:
                self.run_id = run.id
                run.set_total(self.total)
                self.started.set()
                for _ in range(self.total):
                    if self._stop.is_set():
                        break
                    run.advance()
                    run.count("records", 3)
                    time.sleep(self.step)
            self.cancelled = run.status == "cancelled"
        except RunCancelled:  # pragma: no cover - the with block swallows it
            self.cancelled = True
        finally:
            self.started.set()

    def __enter__(self) -> LiveRun:
        self._thread.start()
        assert self.started.wait(10), "the live run did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.ledger.close()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()
