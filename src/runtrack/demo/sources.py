"""Simulated providers: what real ingestion code talks to, minus the network.

Each source answers like its real-world kind (a paginated job board, a
marketplace price API, a CRM connector, a government opportunity search, an
API with a quota) after a short sleep. Answers come from a random generator
seeded by the demo's ``--seed``, the job and the call, so the same seed tells
the same story.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from runtrack.errors import RateLimited, Transient

__all__ = [
    "NAICS_CODES",
    "Crm",
    "Geocoder",
    "JobBoard",
    "Marketplaces",
    "OpportunitySearch",
    "Simulation",
]

NAICS_CODES = ("541511", "541512", "541519", "518210")


@dataclass
class Simulation:
    """The seed, and a call counter per job so that each run gets its own
    deterministic generator."""

    seed: int
    latency: float = 0.03
    calls: dict[str, int] = field(default_factory=dict)

    def rng(self, job: str) -> random.Random:
        n = self.calls.get(job, 0)
        self.calls[job] = n + 1
        return random.Random(f"{self.seed}:{job}:{n}")

    def wait(self, factor: float = 1.0) -> None:
        time.sleep(self.latency * factor)


class JobBoard:
    """A paginated job search; offers seen before come back, sometimes changed."""

    PAGE_SIZE = 20

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim
        self.known: dict[str, int] = {}  # offer id -> version upserted

    def search(self, rng: random.Random, page: int) -> list[dict[str, Any]]:
        """One page of offers; raises Transient for a flaky page."""
        self._sim.wait()
        if page == 3 and rng.random() < 0.35:
            raise Transient(f"HTTP 502 from jobboard on page {page}")
        count = self.PAGE_SIZE if rng.random() > 0.2 else rng.randint(5, self.PAGE_SIZE)
        return [
            {
                "id": f"offer-{rng.randint(1, 400)}",
                "title": rng.choice(["Python developer", "Data engineer", "SRE", "Backend"]),
                "company": rng.choice(["Acme", "Globex", "Initech", "Umbrella"]),
                "version": rng.randint(1, 3),
            }
            for _ in range(count)
        ]

    def upsert(self, offer: dict[str, Any]) -> str:
        """Store an offer; returns created, updated or unchanged."""
        previous = self.known.get(offer["id"])
        self.known[offer["id"]] = offer["version"]
        if previous is None:
            return "created"
        return "unchanged" if previous == offer["version"] else "updated"


class Marketplaces:
    """Price lookups of a product on one marketplace."""

    NAMES = ("amazon", "ebay", "fnac", "mediamarkt")
    PRODUCTS = tuple(f"sku-{n:04d}" for n in (1017, 2291, 3303, 4120, 5008, 6174, 7342, 8806))
    #: Listed nowhere: the "products not found anywhere" of a price comparison.
    DISCONTINUED = frozenset({"sku-5008"})

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def price(self, rng: random.Random, product: str, marketplace: str) -> float | None:
        """The price, ``None`` when not listed; raises TimeoutError sometimes."""
        self._sim.wait(0.3)
        roll = rng.random()
        if roll < 0.08:
            raise TimeoutError(f"{marketplace} did not answer for {product} within 5 s")
        if roll < 0.38 or product in self.DISCONTINUED:
            return None
        return round(rng.uniform(19.0, 899.0), 2)


class Crm:
    """A connector's source: contacts changed since a cursor."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def changes(self, rng: random.Random, cursor: int) -> tuple[list[dict[str, Any]], int]:
        """Contacts changed after ``cursor``, and the new cursor."""
        self._sim.wait(2)
        count = rng.randint(30, 60)
        contacts = [
            {
                "id": f"contact-{rng.randint(1, 500)}",
                "change": rng.choices(["new", "modified", "same"], [3, 5, 2])[0],
            }
            for _ in range(count)
        ]
        return contacts, cursor + count


class OpportunitySearch:
    """A government opportunity search by NAICS code and publication time."""

    PER_DAY = 6.0

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def search(
        self, rng: random.Random, naics: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Notices published in ``[start, end)``: more for a longer window."""
        self._sim.wait()
        days = max((end - start) / timedelta(days=1), 0.0)
        expected = self.PER_DAY * days
        count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
        span = (end - start).total_seconds()
        return [
            {
                "notice_id": f"{naics}-{rng.randrange(16**6):06x}",
                "published_at": start + timedelta(seconds=rng.uniform(0, span)),
            }
            for _ in range(count)
        ]


class Geocoder:
    """An API with a quota: the second batch of a run exhausts it."""

    RETRY_AFTER = timedelta(minutes=15)

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def geocode(self, rng: random.Random, batch: int) -> int:
        """Geocode one batch of addresses; raises RateLimited on the quota."""
        self._sim.wait()
        if batch >= 2:
            raise RateLimited(
                "HTTP 429 from geocoder: daily quota exhausted, retry in 15 min",
                retry_after=self.RETRY_AFTER,
            )
        return rng.randint(40, 50)
