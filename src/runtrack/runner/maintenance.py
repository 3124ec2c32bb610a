"""The runner's built-in maintenance: reap stale runs, prune old history.

Every runner process offers to do it; the ledger's ``claim_maintenance`` (one
conditional update on the ``maintenance`` table) lets exactly one of them per
interval, so a hundred runners reap once a minute, not a hundred times. A
process that lost the claim asks again only a quarter interval later, so the
offers cost a few statements a minute, not two per cycle.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from runtrack import inputs
from runtrack.errors import RuntrackError
from runtrack.ledger import Ledger

__all__ = ["Maintenance"]

log = logging.getLogger("runtrack.runner")


class Maintenance:
    """Intervals of the maintenance tasks (``None`` disables one)."""

    def __init__(
        self,
        reap_every: timedelta | float | str | None,
        prune_every: timedelta | float | str | None,
        prune_older_than: timedelta | float | str,
        *,
        check_every: timedelta | float | str | None = "30s",
    ) -> None:
        self.reap_every = _interval("reap_every", reap_every)
        self.check_every = _interval("check_every", check_every)
        self.prune_every = _interval("prune_every", prune_every)
        self.prune_older_than = inputs.duration("prune_older_than", prune_older_than)
        self._next_offer: dict[str, datetime] = {}  # ledger time

    def run(self, ledger: Ledger) -> None:
        """Do whichever task is due and not already taken by another process.
        A failure is logged: maintenance never stops the jobs."""
        try:
            if self._claimed(ledger, "reap", self.reap_every):
                reaped = ledger.reap()
                if reaped:
                    log.warning("reaped %d stale run(s): %s", len(reaped), reaped[:20])
            if self._claimed(ledger, "prune", self.prune_every):
                pruned = ledger.prune(self.prune_older_than)
                log.info("pruned %d run(s) and %d item(s)", pruned.runs, pruned.items)
            if self._claimed(ledger, "check", self.check_every):  # issue 18
                checked = ledger.check()
                if checked.opened or checked.resolved:
                    log.info("check: %s", checked)
            if self.check_every is not None and ledger.alerting.settings.sinks:
                ledger.alerting.deliverer.start()  # in the background: never a run's delay
        except RuntrackError as exc:
            log.warning("maintenance failed, will try again next cycle: %s", exc)
        except Exception:  # a bug in maintenance must not stop the jobs either
            log.exception("maintenance failed unexpectedly, will try again next cycle")

    def _claimed(self, ledger: Ledger, task: str, every: timedelta | None) -> bool:
        now = ledger.now()
        if every is None or now < self._next_offer.get(task, now):
            return False
        won = ledger.claim_maintenance(task, every)
        self._next_offer[task] = now + (every if won else every / 4)
        return won


def _interval(field: str, value: timedelta | float | str | None) -> timedelta | None:
    return None if value is None else inputs.duration(field, value)
