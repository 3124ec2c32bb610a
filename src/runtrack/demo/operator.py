"""What happens to the demo's runs from outside: a worker process that dies
and is reaped, an operator who cancels a backfill.

Each scenario runs on its own thread next to the runner and records what it
saw, for the summary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runtrack.demo.crash import crash_worker
from runtrack.ledger import Ledger
from runtrack.models import RunRecord
from runtrack.run import Run

__all__ = ["Operator"]

log = logging.getLogger("runtrack.demo")

CRASH_JOB = ("feeds:import:catalog", "feeds")
CANCEL_JOB = "archive:backfill:2023"


@dataclass
class Operator:
    """The demo's operator: kills a worker, reaps it, cancels a backfill."""

    ledger: Ledger
    backfill: Callable[[Run], None]
    stories: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for target in (self._crash_and_reap, self._backfill, self._cancel_backfill):
            thread = threading.Thread(target=self._guarded(target), daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # a demo scenario must not kill the demo
                log.exception("demo scenario failed")
                self.stories.append(f"scenario failed: {exc}")

        return run

    def _crash_and_reap(self) -> None:
        ledger = self.ledger
        job, provider = CRASH_JOB
        beat = ledger.heartbeat_interval
        crash = crash_worker(ledger.url, job, provider, beat, work=4 * beat)
        record = self._reap_until_final(crash.run_id)
        imported = record.counters.get("records_imported", 0)
        self.stories.append(
            f"worker pid {crash.pid} killed with SIGKILL while run {crash.run_id} was running; "
            f"reaped after {ledger.stale_after.total_seconds():g} s without a heartbeat: "
            f"{record.status} / {record.error_type}, keeping the {imported:g} "
            "records_imported of its last heartbeat"
        )

    def _reap_until_final(self, run_id: int) -> RunRecord:
        wait = self.ledger.stale_after.total_seconds()
        deadline = time.monotonic() + 4 * wait + 5
        while True:
            time.sleep(wait / 4)
            self.ledger.reap()
            record = self.ledger.get_run(run_id)
            if not record.is_active or time.monotonic() > deadline:
                return record

    def _backfill(self) -> None:
        """An operator starts a backfill by hand..."""
        with self.ledger.run(
            CANCEL_JOB, provider="archive", triggered_by="demo-operator", params={"year": 2023}
        ) as run:
            self.backfill(run)

    def _cancel_backfill(self) -> None:
        """...and cancels it: the wrong year."""
        run = self._wait_for_active(CANCEL_JOB, timeout=30.0)
        if run is None:
            self.stories.append(f"{CANCEL_JOB} never started, nothing to cancel")
            return
        time.sleep(0.8)
        self.ledger.cancel(run.id, by="demo-operator", reason="wrong year")
        record = self._wait_for_final(run.id, timeout=10.0)
        self.stories.append(
            f"run {record.id} of {CANCEL_JOB} cancelled by demo-operator after "
            f"{record.progress_done} of {record.progress_total} chunks: {record.status}"
        )

    def _wait_for_active(self, job: str, timeout: float) -> RunRecord | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for run in self.ledger.active_runs(job):
                if run.status == "running":
                    return run
            time.sleep(0.05)
        return None

    def _wait_for_final(self, run_id: int, timeout: float) -> RunRecord:
        deadline = time.monotonic() + timeout
        record = self.ledger.get_run(run_id)
        while record.is_active and time.monotonic() < deadline:
            time.sleep(0.05)
            record = self.ledger.get_run(run_id)
        return record
