"""The runner's built-in maintenance: reap stale runs, prune old history.

Every runner process offers to do it each cycle; the ledger's
``claim_maintenance`` (one conditional update on the ``maintenance`` table)
lets exactly one of them per interval, so a hundred runners reap once a
minute, not a hundred times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from runtrack import inputs
from runtrack.errors import RuntrackError
from runtrack.ledger import Ledger

__all__ = ["Maintenance"]

log = logging.getLogger("runtrack.runner")


@dataclass(frozen=True, slots=True)
class Maintenance:
    """Intervals of the maintenance tasks (``None`` disables one)."""

    reap_every: timedelta | None
    prune_every: timedelta | None
    prune_older_than: timedelta

    @classmethod
    def of(
        cls,
        reap_every: timedelta | float | str | None,
        prune_every: timedelta | float | str | None,
        prune_older_than: timedelta | float | str,
    ) -> Maintenance:
        """Validated intervals."""
        return cls(
            inputs.duration("reap_every", reap_every) if reap_every is not None else None,
            inputs.duration("prune_every", prune_every) if prune_every is not None else None,
            inputs.duration("prune_older_than", prune_older_than),
        )

    def run(self, ledger: Ledger) -> None:
        """Do whichever task is due and not already taken by another process.
        A database error is logged: maintenance never stops the jobs."""
        try:
            if self.reap_every is not None and ledger.claim_maintenance("reap", self.reap_every):
                reaped = ledger.reap()
                if reaped:
                    log.warning("reaped %d stale run(s): %s", len(reaped), reaped[:20])
            if self.prune_every is not None and ledger.claim_maintenance("prune", self.prune_every):
                pruned = ledger.prune(self.prune_older_than)
                log.info("pruned %d run(s) and %d item(s)", pruned.runs, pruned.items)
        except RuntrackError as exc:
            log.warning("maintenance failed, will try again next cycle: %s", exc)
        except Exception:  # a bug in maintenance must not stop the jobs either
            log.exception("maintenance failed unexpectedly, will try again next cycle")
