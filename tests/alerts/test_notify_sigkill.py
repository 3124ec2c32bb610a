"""Told once, through crashes (issue 18): checkers SIGKILLed at random
moments while 50 incidents open and resolve. Every transition reaches the
receiver at least once and at most twice, and a duplicate carries the same
idempotency key (a checker died between sending and recording)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from receivers import Webhook

from runtrack import Ledger

WORKER = Path(__file__).with_name("alert_worker.py")
INCIDENTS = 50
CHECKERS = 3


class Checkers:
    """Runner processes that check every 0.3 s; one is killed and replaced
    every so often."""

    def __init__(self, url: str, hook: Webhook, logs: Path) -> None:
        self.url, self.logs, self.started = url, logs, 0
        self.env = dict(os.environ, RUNTRACK_NOTIFY=hook.url, RUNTRACK_NOTIFY_CLAIM="2s")
        self.alive: list[subprocess.Popen[bytes]] = []
        self.rng = random.Random(18)

    def start(self) -> None:
        with (self.logs / f"checker-{self.started}.log").open("wb") as log:
            command = [sys.executable, str(WORKER), self.url, str(self.started), "0.3"]
            self.alive.append(subprocess.Popen(command, env=self.env, stdout=log, stderr=log))
        self.started += 1

    def kill_one(self) -> None:
        victim = self.alive.pop(self.rng.randrange(len(self.alive)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.start()

    def churn_until(self, done: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]
            time.sleep(self.rng.uniform(0.2, 1.0))
            self.kill_one()

    def stop(self) -> None:
        for process in self.alive:
            process.kill()
            process.wait()


def test_sigkilled_checkers_deliver_each_transition_once_or_twice(
    db_url: str, webhook: Webhook, tmp_path: Path
) -> None:
    checkers = Checkers(db_url, webhook, tmp_path)
    with Ledger(db_url) as ledger:
        jobs = [f"shop:{n:02d}" for n in range(INCIDENTS)]
        for job in jobs:
            ledger.expect(job, success_within="1s")
        try:
            for _ in range(CHECKERS):
                checkers.start()

            def delivered(event: str) -> bool:
                return len({e["incident"]["id"] for e in webhook.events(event)}) >= INCIDENTS

            checkers.churn_until(lambda: delivered("opened"), timeout=120)
            for job in jobs:
                ledger.expect(job, success_within="1h")  # holds again: each resolves
            checkers.churn_until(lambda: delivered("resolved"), timeout=120)
            time.sleep(3)  # claims of killed senders expire; late duplicates land
        finally:
            checkers.stop()
    events = webhook.events()
    per_transition = Counter((e["incident"]["id"], e["event"]) for e in events)
    keys = {(e["incident"]["id"], e["event"]): set() for e in events}
    for e in events:
        keys[(e["incident"]["id"], e["event"])].add(e["idempotency_key"])
    assert len({i for i, event in per_transition if event == "opened"}) == INCIDENTS
    assert len({i for i, event in per_transition if event == "resolved"}) == INCIDENTS
    assert set(per_transition.values()) <= {1, 2}, per_transition.most_common(3)
    assert all(len(k) == 1 for k in keys.values())  # a duplicate has the same key
    print(f"\n{len(events)} notifications for {2 * INCIDENTS} transitions, "
          f"{checkers.started - CHECKERS} checkers killed")  # fmt: skip
