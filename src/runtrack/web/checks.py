"""``runtrack serve`` checks expectations too (issue 18): a background task
of the app's lifespan runs :meth:`~runtrack.ledger.Ledger.check` every
``check_every`` seconds and sends the notifications that are due, so a
deployment with a dashboard and no runner still hears about late jobs.

The work runs in a thread (``asyncio.to_thread``), never on the event loop.
Like the runners' maintenance, a process checks only when it wins the
interval's ``check`` claim, so several servers and runners check about once
per interval between them; were two to check at once, the store's
conditional writes still open and resolve each incident once. Stopping
waits for a pass in flight, so the ledger is closed after it, not under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from runtrack.ledger import Ledger

__all__ = ["BackgroundChecks"]

log = logging.getLogger("runtrack.web")


class BackgroundChecks:
    """The check loop of one server process (``start`` then ``stop``)."""

    def __init__(self, ledger: Ledger, every: float) -> None:
        self.ledger = ledger
        self.every = every
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="runtrack-check")

    async def stop(self) -> None:
        """End the loop once the pass in flight (if any) has finished."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.to_thread(self.run_once)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every)

    def run_once(self) -> None:
        """Check if this process wins the interval, then deliver what is due.
        A failure is logged: the next pass tries again."""
        try:
            if self.ledger.claim_maintenance("check", self.every):
                checked = self.ledger.check()
                if checked.opened or checked.resolved:
                    log.info("check: %s", checked)
            if self.ledger.alerting.settings.sinks:
                self.ledger.deliver()
        except Exception:  # the server goes on serving
            log.exception("the background check failed; trying again in %g s", self.every)
