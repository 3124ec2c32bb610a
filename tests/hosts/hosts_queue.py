"""The queued part of the multi-host tier's fleet: manual triggers and one
backfill, queued from outside the hosts while the fleet runs, a provider
limit set before it starts, and the checks of what became of them.

Every queued run must have been executed exactly once (one start by one
worker, success) or ended by a fault (reaped after its host was cut off or
killed, its worker's writes fenced): never started twice, never a second run
for one trigger or one window, never left pending or running at the end.
The backfill's runs tile its range; the limited provider never had more
running runs than its limit.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from hosts_runner import BACKFILL_JOB, HEARTBEAT, PROVIDER_LIMITS, STALE_AFTER, TRIGGER_JOB

from runtrack import Ledger

BY = "hosts-test"
BACKFILL_START = datetime(2026, 1, 1, tzinfo=UTC)
BACKFILL_STEP = timedelta(hours=1)


def naive_utc(at: datetime | None) -> datetime | None:
    if at is None or at.tzinfo is None:
        return at
    return at.astimezone(UTC).replace(tzinfo=None)


class Queued:
    """Queues runs through a ledger of the test process (outside the hosts)."""

    def __init__(self, url: str) -> None:
        self.ledger = Ledger(
            url, heartbeat_interval=HEARTBEAT, stale_after=STALE_AFTER, migrate=False
        )
        self.triggers: dict[int, int] = {}  # trigger number -> its run id
        self.backfill_id: int | None = None
        self.backfill_end = BACKFILL_START

    def limit(self) -> None:
        for provider, most in PROVIDER_LIMITS.items():
            self.ledger.limit_provider(provider, max_running=most)

    def trigger(self, count: int) -> None:
        for _ in range(count):
            i = len(self.triggers)
            # Distinct params: a trigger equal to a pending one would return it.
            self.triggers[i] = self.ledger.trigger(TRIGGER_JOB, params={"i": i}, by=BY).id

    def backfill(self, windows: int) -> None:
        self.backfill_end = BACKFILL_START + windows * BACKFILL_STEP
        record = self.ledger.backfill(
            BACKFILL_JOB, BACKFILL_START, self.backfill_end, every=BACKFILL_STEP, by=BY
        )
        self.backfill_id = record.id

    def reconnect(self) -> None:
        """After a database restart: drop the pool's dead connections."""
        self.ledger.engine.dispose()

    def pending(self) -> int:
        with self.ledger.engine.connect() as conn:
            return int(
                conn.execute(sa.text("SELECT count(*) FROM runs WHERE status = 'pending'")).scalar()
                or 0
            )

    def close(self) -> None:
        self.ledger.close()


def check_queued(
    queued: Queued, runs: Sequence[Any], started: Counter[int]
) -> tuple[dict[str, Any], list[str]]:
    """The figures of the queued runs and what is wrong with them."""
    problems: list[str] = []
    by_id = {r.id: r for r in runs}
    missing = [i for i, run_id in queued.triggers.items() if run_id not in by_id]
    if missing:
        problems.append(f"triggers with no run: {missing[:5]}")
    per_trigger = Counter(
        (r.params or {}).get("i") for r in runs if r.job_key == TRIGGER_JOB and r.params
    )
    doubled = {i: n for i, n in per_trigger.items() if n > 1}
    if doubled:
        problems.append(f"triggers with more than one run: {doubled}")
    windows = sorted(
        (r for r in runs if r.backfill_id is not None and r.backfill_id == queued.backfill_id),
        key=lambda r: (naive_utc(r.window_start), r.id),
    )
    problems += _tiling(queued, windows)
    ids = [run_id for run_id in queued.triggers.values() if run_id in by_id]
    ids += [r.id for r in windows]
    twice = [i for i in ids if started[i] > 1]
    if twice:
        problems.append(f"queued runs started twice: {twice[:5]}")
    unfinished = [i for i in ids if by_id[i].status in ("pending", "running")]
    if unfinished:
        problems.append(f"queued runs left pending/running: {unfinished[:5]}")
    not_once = [i for i in ids if by_id[i].status == "success" and started[i] != 1]
    if not_once:
        problems.append(f"queued runs succeeded without exactly one start: {not_once[:5]}")
    faults = Counter(
        f"{by_id[i].status}/{by_id[i].error_type}"
        for i in ids
        if by_id[i].status not in ("success", "pending", "running")
    )
    # A queued run that did not succeed must have ended by a recorded fault.
    unexplained = [i for i in ids if by_id[i].status != "success" and not by_id[i].error_type]
    if unexplained:
        problems.append(f"queued runs failed with no fault recorded: {unexplained[:5]}")
    trigger_ids = set(queued.triggers.values())
    figures = {
        "triggers": len(queued.triggers),
        "triggers_succeeded": sum(by_id[i].status == "success" for i in ids if i in trigger_ids),
        "backfill_windows": len(windows),
        "backfill_windows_succeeded": sum(r.status == "success" for r in windows),
        "queued_ended_by_fault": dict(faults),
    }
    return figures, problems


def _tiling(queued: Queued, windows: Sequence[Any]) -> list[str]:
    """The backfill's runs cover ``[start, end)`` with no gap and no overlap."""
    if queued.backfill_id is None:
        return ["no backfill was queued"]
    if not windows:
        return ["the backfill queued no runs"]
    edges = [(naive_utc(r.window_start), naive_utc(r.window_end)) for r in windows]
    problems = []
    if edges[0][0] != naive_utc(BACKFILL_START) or edges[-1][1] != naive_utc(queued.backfill_end):
        problems.append(f"backfill runs cover {edges[0][0]}..{edges[-1][1]}, not its range")
    gaps = [(a, b) for a, b in itertools.pairwise(edges) if a[1] != b[0]]
    if gaps:
        problems.append(f"backfill windows do not tile (gap, overlap or twice): {gaps[:3]}")
    return problems
