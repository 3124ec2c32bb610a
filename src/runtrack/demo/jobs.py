"""The demo's ingestion jobs: ordinary job functions that receive the run
handle, written the way a user would write them against a real provider."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from runtrack.demo.sources import (
    NAICS_CODES,
    Crm,
    Geocoder,
    JobBoard,
    Marketplaces,
    OpportunitySearch,
    Simulation,
)
from runtrack.errors import Transient
from runtrack.run import Run

__all__ = ["INCREMENTAL", "DemoJob", "demo_jobs"]

#: The job whose runs search incremental windows of publication time.
INCREMENTAL = "sam:discovery:naics"


@dataclass(frozen=True, slots=True)
class DemoJob:
    """A job of the demo and how often the runner should run it."""

    key: str
    provider: str
    every: timedelta
    fn: Callable[[Run], Any]
    scenario: str


class Jobs:
    """The job functions, sharing the simulated sources of one demo."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.board = JobBoard(sim)
        self.shops = Marketplaces(sim)
        self.crm = Crm(sim)
        self.notices = OpportunitySearch(sim)
        self.geocoder = Geocoder(sim)

    def search_offers(self, run: Run) -> None:
        """Page through a job-board search and upsert every offer. A page
        that fails is an ``error`` item (the run goes on and ends partial);
        the job owes it (``on_partial="carry"``, the default), so the next
        run fetches it too, and recording it fetched settles it."""
        rng = self.sim.rng(run.job)
        owed = {item.data["page"] for item in run.carried.items}  # pages only fail
        pages = sorted(owed | set(range(1, rng.randint(3, 6) + 1)))
        run.set_total(len(pages))
        for page in pages:
            key, where = f"page-{page}", {"page": page}
            try:
                offers = self.board.search(rng, page)
            except Transient as exc:
                run.item(key, "error", data=where, error=str(exc))
                run.advance()
                continue
            if page in owed:
                run.item(key, "success", data=where)
            run.count("pages_fetched")
            run.count("offers_fetched", len(offers))
            for offer in offers:
                outcome = self.board.upsert(offer)
                status = "skipped" if outcome == "unchanged" else "success"
                run.item(offer["id"], status, data={"title": offer["title"], "outcome": outcome})
                run.count(f"offers_{outcome}")
            run.advance()

    def lookup_prices(self, run: Run) -> None:
        """Look every product up on every marketplace."""
        rng = self.sim.rng(run.job)
        run.set_total(len(Marketplaces.PRODUCTS) * len(Marketplaces.NAMES))
        for product in Marketplaces.PRODUCTS:
            for shop in Marketplaces.NAMES:
                self._lookup(run, rng, product, shop)
                run.advance()

    def _lookup(self, run: Run, rng: Any, product: str, shop: str) -> None:
        try:
            price = self.shops.price(rng, product, shop)
        except TimeoutError as exc:
            run.item(product, "error", group=product, source=shop, error=str(exc))
            run.count("lookup_errors")
            return
        if price is None:
            run.item(product, "not_found", group=product, source=shop)
            run.count("prices_not_found")
        else:
            run.item(product, "success", group=product, source=shop, data={"price": price})
            run.count("prices_found")

    def sync_contacts(self, run: Run) -> None:
        """A connector: fetch what changed since the saved cursor."""
        rng = self.sim.rng(run.job)
        previous = run.previous_checkpoint or {"v": 1, "cursor": 0}
        contacts, cursor = self.crm.changes(rng, previous["cursor"])
        run.count("fetched", len(contacts))
        for contact in contacts:
            name = {"new": "created", "modified": "updated", "same": "skipped"}[contact["change"]]
            run.count(name)
        run.save_checkpoint({"v": 1, "cursor": cursor})

    def discover_notices(self, run: Run) -> None:
        """Search each NAICS code over the run's window: the slice of
        publication time since the last good run, so nothing is missed."""
        rng = self.sim.rng(run.job)
        end = run.window.end
        assert end is not None  # the ledger always sets the window's end
        start = run.window.start or end - timedelta(days=7)  # first run: last week
        run.note(f"window {start.isoformat()} -> {end.isoformat()}")
        run.set_total(len(NAICS_CODES))
        for naics in NAICS_CODES:
            notices = self.notices.search(rng, naics, start, end)
            run.count("notices_found", len(notices))
            for notice in notices:
                run.item(notice["notice_id"], "success", group=naics, source="sam.gov")
            run.advance()

    def geocode_addresses(self, run: Run) -> None:
        """Geocode addresses in batches until the provider's quota runs out."""
        rng = self.sim.rng(run.job)
        for batch in range(1, 4):
            run.count("addresses_geocoded", self.geocoder.geocode(rng, batch))

    def backfill_archive(self, run: Run) -> None:
        """A long backfill that an operator will cancel."""
        run.set_total(400)
        for _ in range(400):
            time.sleep(0.025)
            run.count("records_backfilled", 25)
            run.advance()


def demo_jobs(sim: Simulation) -> tuple[list[DemoJob], Callable[[Run], None]]:
    """The scheduled jobs of the demo, and the backfill an operator starts
    (and cancels) by hand."""
    jobs = Jobs(sim)
    every = timedelta(seconds=2)
    scheduled = [
        DemoJob("jobboard:search:python-madrid", "jobboard", every, jobs.search_offers,
                "paginated search upserting offers"),
        DemoJob("pricewatch:prices:electronics", "pricewatch", every, jobs.lookup_prices,
                "products x marketplaces: found / not found / error"),
        DemoJob("crm:sync:contacts", "crm", every, jobs.sync_contacts,
                "connector: fetched / created / updated / skipped"),
        DemoJob(INCREMENTAL, "sam", every, jobs.discover_notices,
                "NAICS discovery over incremental windows"),
        DemoJob("geocoder:enrich:addresses", "geocoder", every, jobs.geocode_addresses,
                "rate limited: the provider gets paused"),
    ]  # fmt: skip
    return scheduled, jobs.backfill_archive
