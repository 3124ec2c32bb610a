"""A runner process for the notification process tests (not a test module).

python alert_worker.py URL N CHECK_EVERY   # one idle job; checks every CHECK_EVERY s

Notification settings come from the environment (RUNTRACK_NOTIFY ...).
"""

from __future__ import annotations

import logging
import sys

from runtrack import Ledger, Run, Runner


def idle(run: Run) -> None:
    run.count("ticks")


def main(url: str, n: str, check_every: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ledger = Ledger(url, heartbeat_interval=1.0)
    runner = Runner(ledger, worker_id=f"alerts-{n}", check_every=float(check_every), jitter=0.1)
    runner.job(f"alerts:idle-{n}", provider="idle", every="1h")(idle)
    runner.run_forever()
    ledger.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
