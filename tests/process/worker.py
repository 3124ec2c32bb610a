"""A worker process for the real-process liveness tests.

Started by the tests with ``sys.executable worker.py MODE URL JOB [ARG]``. It
reports on stdout, one line per event (``started <run id>``, ``done <status>``,
...), flushed at once so that the parent can act at the right moment.

Modes:

``loop``     count and record an item every few milliseconds until killed,
             stopped or told the run is lost; on ``LeaseLost`` it tries every
             kind of write once more and exits 3.
``sleep``    ARG is "S,B": block the main thread in ``time.sleep(S)``, then
             spin a pure-Python busy loop for B seconds, then finish the run.
``contend``  start the job ARG times, counting ``JobBusy`` refusals; print
             ``summary {json}``.
``abandon``  start a run and leave the interpreter without finishing it: the
             process must still exit promptly (the heartbeat thread stops).
``fork``     start a run, fork; the child starts a run of its own and must
             heartbeat it (a fresh thread) without touching the parent's run.
``carry``    start a run, take what the job owes, record the first two owed
             items as successes and a new item as failed, print
             ``handed <items> <slices> <run id>`` once they are written, then
             wait to be killed.
``items``    record 7 items in 3 groups (4 success, 3 not_found), have a
             heartbeat write them, print ``recorded <run id>``, then
             wait to be killed (or, told the run is lost, exit 3).
"""

from __future__ import annotations

import json
import os
import sys
import time

from runtrack import JobBusy, LeaseLost, Ledger

HEARTBEAT = 0.05


def say(*parts: object) -> None:
    print(*parts, flush=True)


def loop(ledger: Ledger, job: str) -> int:
    run = ledger.start_run(job)
    say("started", run.id)
    i = 0
    try:
        while True:
            i += 1
            run.count("ticks")
            run.item(f"item-{i}", "success")
            time.sleep(0.005)
    except LeaseLost:
        say("lease_lost")
    # Every write the handle can make must now be refused and change nothing.
    refused = 0
    attempts = [
        lambda: run.count("after"),
        lambda: run.item("after", "success"),
        lambda: run.save_checkpoint({"after": True}),
        lambda: ledger.finish_run(run, "success"),
    ]
    for attempt in attempts:
        try:
            attempt()
        except LeaseLost:
            refused += 1
    ledger.heartbeat_now()
    say("refused", refused)
    return 3


def sleep(ledger: Ledger, job: str, how: str) -> int:
    asleep, busy = (float(part) for part in how.split(","))
    with ledger.run(job) as run:
        say("started", run.id)
        run.count("before")
        time.sleep(asleep)
        deadline = time.monotonic() + busy
        spins = 0
        while time.monotonic() < deadline:  # holds the GIL between switches
            spins += 1
        run.count("after")
    say("done", run.status)
    return 0


def contend(ledger: Ledger, job: str, times: int) -> int:
    started = busy = 0
    for _ in range(times):
        try:
            with ledger.run(job) as run:
                run.count("n")
                started += 1
        except JobBusy:
            busy += 1
    say("summary", json.dumps({"started": started, "busy": busy}))
    return 0


def abandon(ledger: Ledger, job: str) -> int:
    run = ledger.start_run(job)
    say("started", run.id)
    return 0  # no finish, no close: interpreter exit must still be prompt


def fork(ledger: Ledger, job: str) -> int:
    parent_run = ledger.start_run(f"{job}:parent")
    say("started", parent_run.id)
    pid = os.fork()
    if pid == 0:
        child_run = ledger.start_run(f"{job}:child")
        say("child", child_run.id)
        time.sleep(10 * HEARTBEAT)
        ledger.finish_run(child_run, "success")
        say("child_done")
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    ledger.finish_run(parent_run, "success")
    say("parent_done", os.waitstatus_to_exitcode(status))
    return 0


def carry(ledger: Ledger, job: str) -> int:
    run = ledger.start_run(job)
    handed = run.carried
    for item in handed.items[:2]:
        run.item(item.key, "success")
    run.item("fresh", "error", error="recorded before the kill")
    ledger.heartbeat_now()  # the items are in the database now
    say("handed", len(handed.items), len(handed.slices), run.id)
    while True:
        run.check_cancelled()
        time.sleep(0.01)


#: (key, status, group) of the ``items`` mode: groups g1 and g2 found, g3 missing.
ITEMS = [
    ("a", "success", "g1"),
    ("b", "success", "g1"),
    ("c", "not_found", "g1"),
    ("d", "success", "g2"),
    ("e", "not_found", "g3"),
    ("f", "not_found", "g3"),
    ("g", "success", None),
]


def items(ledger: Ledger, job: str) -> int:
    run = ledger.start_run(job)
    for key, status, group in ITEMS:
        run.item(key, status, group=group)
    ledger.heartbeat_now()  # the tick writes the buffered items too
    say("recorded", run.id)
    try:
        while True:
            run.check_cancelled()
            time.sleep(HEARTBEAT / 5)
    except LeaseLost:
        say("lease_lost")
    return 3


def main(argv: list[str]) -> int:
    mode, url, job = argv[1], argv[2], argv[3]
    arg = argv[4] if len(argv) > 4 else ""
    ledger = Ledger(url, heartbeat_interval=HEARTBEAT, migrate=False)
    if mode == "abandon":
        return abandon(ledger, job)
    try:
        if mode == "loop":
            return loop(ledger, job)
        if mode == "sleep":
            return sleep(ledger, job, arg)
        if mode == "contend":
            return contend(ledger, job, int(arg))
        if mode == "fork":
            return fork(ledger, job)
        if mode == "carry":
            return carry(ledger, job)
        if mode == "items":
            return items(ledger, job)
        raise SystemExit(f"unknown mode {mode!r}")
    finally:
        ledger.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
