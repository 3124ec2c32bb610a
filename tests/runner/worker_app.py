"""A runner process for the process-level tests (not a test module).

python worker_app.py URL fleet WORKER_ID   # 20 jobs every 2 s, note each tick
python worker_app.py URL long GRACE        # one job that counts until stopped
python worker_app.py URL stuck GRACE       # one job that ignores its run handle
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from runtrack import Ledger, Run, Runner

FLEET_JOBS = 20
FLEET_EVERY = 2.0


def note_tick(run: Run) -> None:
    assert run.scheduled_for is not None
    run.note(run.scheduled_for.isoformat())
    run.count("pages", 3)
    time.sleep(0.01)


def count_forever(run: Run) -> None:
    while True:
        run.count("pages")
        time.sleep(0.02)


def ignore_the_handle(run: Run) -> None:
    run.count("pages", 5)
    threading.Event().wait(600)  # a call that never returns and never checks the run


def main(url: str, mode: str, arg: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The fleet's runs last milliseconds: no need to heartbeat 20 times a second.
    ledger = Ledger(url, heartbeat_interval=1.0 if mode == "fleet" else 0.05)
    if mode == "fleet":
        runner = Runner(ledger, worker_id=arg, grace=10)
        for n in range(FLEET_JOBS):
            runner.job(f"fleet:{n:02d}", provider=f"p{n % 4}", every=FLEET_EVERY)(note_tick)
    else:
        runner = Runner(ledger, grace=float(arg))
        job = count_forever if mode == "long" else ignore_the_handle
        runner.job(f"process:{mode}", provider="board", every="1h")(job)
    runner.run_forever()
    ledger.close()
    # CLOCK_MONOTONIC is system-wide: the test compares it with its own. What
    # follows is the interpreter's teardown, which runtrack does not control.
    print(f"runner returned at {time.monotonic()}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
