"""A runner process of the multi-host tier: ``python -m hosts_runner URL
WORKER_ID EVENTS_FILE``, started by the tests inside a simulated host
(``ip netns exec``) under ``faketime`` with that host's clock skew.

It serves the tier's fleet of jobs with one :class:`runtrack.Runner` until
SIGTERM (graceful) or SIGKILL (a host death). Each run records its schedule
tick as the counter ``tick`` (epoch seconds, written once) and counts ``n``
while it works, so the tests can check from the database that no tick ran
twice and no counter went backwards. Queued runs (the tests' manual
triggers and backfill windows) are claimed by the same runners: a runner
serves the queue of every job it registers. The process appends one line per
event to EVENTS_FILE: its clocks at start, every run it started, every tick
it skipped because the job (or its provider) was busy (with whether the skip
was recorded on the job row), and every write of a run that the database
refused because the run is no longer this worker's (fenced).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from runtrack import LeaseLost, Ledger, RetryPolicy, Runner

#: The fleet: key -> (schedule, concurrency, seconds of work). Kept in one
#: place so the checks know what each job allows.
FLEET: dict[str, dict[str, Any]] = {
    "every-2s": {"every": 2.0, "concurrency": 1, "work": 1.5},
    "every-1s-pair": {"every": 1.0, "concurrency": 2, "work": 2.5},
    "every-3s": {"every": 3.0, "concurrency": 1, "work": 0.5},
    "cron-minute": {"cron": "* * * * *", "concurrency": 1, "work": 1.0},
    # Two jobs sharing the provider "limited" (more slots than its limit),
    # also the target of the tests' manual triggers.
    "limited-a": {"every": 1.0, "concurrency": 2, "work": 1.0, "provider": "limited"},
    "limited-b": {"every": 2.0, "concurrency": 1, "work": 1.0, "provider": "limited"},
    # The backfill's job: its windows are queued runs; its own ticks are rare.
    "backfill-day": {"every": 30.0, "concurrency": 2, "work": 0.4},
}
#: Provider -> max running runs across every host (``ledger.limit_provider``).
PROVIDER_LIMITS = {"limited": 2}
TRIGGER_JOB = "limited-b"
BACKFILL_JOB = "backfill-day"
HEARTBEAT = 0.3
STALE_AFTER = 3.0
REAP_EVERY = 1.0
STEP = 0.1  # seconds between two counts of a run


def _sleep(seconds: float) -> None:
    threading.Event().wait(seconds)


# Debian's libfaketime 0.9.10 with a negative offset makes time.sleep fail
# with EINVAL (its clock_nanosleep wrapper shifts the absolute monotonic
# deadline); condition waits are unaffected, so this process sleeps on one.
time.sleep = _sleep


class Events:
    """One JSON line per event, flushed at once (a SIGKILL loses at most one)."""

    def __init__(self, path: str, worker: str) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
        self.worker = worker

    def say(self, kind: str, **fields: Any) -> None:
        fields.update(kind=kind, worker=self.worker, pid=os.getpid())
        self.file.write(json.dumps(fields, default=str) + "\n")
        self.file.flush()


class RunnerLog(logging.Handler):
    """Records what the runner logs: a run that ended in ``LeaseLost`` (its
    final write was refused as no longer ours: fenced), and a tick it skipped
    because the job or its provider was at its limit. The runner records the
    skip on the job row first and logs it then; a line with "not recorded"
    says the database write failed (issue 21)."""

    def __init__(self, events: Events) -> None:
        super().__init__(logging.INFO)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "busy: tick skipped" in text:
            recorded = "not recorded" not in text
            self.events.say("skipped", reason="busy", recorded=recorded, message=text[:200])
        elif "LeaseLost" in text or "no longer owned" in text:
            self.events.say("fenced", where="finish", message=text[:300])


def build(ledger: Ledger, worker: str, events: Events) -> Runner:
    runner = Runner(
        ledger,
        worker_id=worker,
        retry=RetryPolicy.never(),
        grace=2.0,
        reap_every=REAP_EVERY,
        prune_every=None,
        max_sleep=1.0,
        jitter=0.05,
    )
    for key, spec in FLEET.items():
        schedule = {k: spec[k] for k in ("every", "cron") if k in spec}
        provider = spec.get("provider", "hosts")
        runner.job(key, provider=provider, concurrency=spec["concurrency"], **schedule)(
            make_job(spec["work"], events)
        )
    return runner


def make_job(work: float, events: Events) -> Any:
    def job(run: Any) -> None:
        events.say("started", run_id=run.id, job=run.job)
        if run.scheduled_for is not None:  # a tick; a queued run has none
            run.set_counter("tick", int(run.scheduled_for.timestamp()))
        # Real elapsed time: the job's length must not depend on the skew.
        end = time.monotonic() + work
        try:
            while time.monotonic() < end:
                run.count("n")
                time.sleep(STEP)
        except LeaseLost as lost:  # a heartbeat was refused: the run was reaped
            events.say("fenced", where="heartbeat", run_id=lost.run_id)
            raise

    return job


def main(url: str, worker: str, events_path: str) -> int:
    events = Events(events_path, worker)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {worker} %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("runtrack").addHandler(RunnerLog(events))
    ledger = Ledger(
        url,
        heartbeat_interval=HEARTBEAT,
        stale_after=STALE_AFTER,
        migrate=False,
    )
    events.say(
        "clock",
        local=datetime.now(UTC).isoformat(),  # noqa: TID251 (the skewed local clock is the point)
        database=ledger.now().isoformat(),
        time=time.time(),  # noqa: TID251
    )
    runner = build(ledger, worker, events)
    events.say("ready")
    try:
        runner.run_forever()
    finally:
        ledger.close()
    events.say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
