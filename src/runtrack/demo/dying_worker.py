"""The demo's worker process that gets killed: ``python -m
runtrack.demo.dying_worker JOB PROVIDER HEARTBEAT`` with the database in
``RUNTRACK_DATABASE_URL``. It prints its run id on the first line, then
imports records until SIGKILL ends it. (A module of its own, which the demo
package never imports, so ``-m`` runs it fresh.)
"""

from __future__ import annotations

import sys
import time

from runtrack.ledger import Ledger

__all__: list[str] = []


def work(job: str, provider: str, heartbeat: float) -> None:
    """Start a run and count imported records until the process is killed."""
    ledger = Ledger(heartbeat_interval=heartbeat)
    with ledger.run(job, provider=provider, params={"feed": "catalog.xml"}) as run:
        print(run.id, flush=True)
        while True:  # until SIGKILL
            time.sleep(0.02)
            run.count("records_imported", 10)


if __name__ == "__main__":
    work(sys.argv[1], sys.argv[2], float(sys.argv[3]))
