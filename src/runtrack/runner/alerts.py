"""The runner's part of issue 18: its jobs' expectations reach the database
(an explicit ``expect=Expect(...)``, else the default "late after 3 x the
schedule's interval", which never replaces an explicit one)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace

from runtrack.errors import RuntrackError
from runtrack.expectations import DEFAULT_LATE_FACTOR, Expect
from runtrack.ledger import Ledger
from runtrack.runner.registry import JobSpec

__all__ = ["default_expect", "publish_expectations"]

log = logging.getLogger("runtrack.runner")


def default_expect(spec: JobSpec, ledger: Ledger) -> Expect:
    """Late after 3 x the interval between the schedule's ticks."""
    first = spec.schedule.first_due(ledger.now())
    interval = spec.schedule.next_after(first, first) - first
    return Expect(success_within=interval * DEFAULT_LATE_FACTOR, origin="default")


def publish_expectations(
    ledger: Ledger, specs: Iterable[JobSpec], explicit: Mapping[str, Expect]
) -> bool:
    """Store each job's expectation; False if the database refused (the
    next cycle tries again)."""
    try:
        for spec in specs:
            given = explicit.get(spec.key)
            expect = replace(given, origin="explicit") if given else default_expect(spec, ledger)
            ledger.ensure_job(spec.key, provider=spec.provider)  # made with its provider
            ledger.alerting.expect(spec.key, expect)
    except RuntrackError as exc:
        log.warning("could not store the jobs' expectations, will try again: %s", exc)
        return False
    return True
