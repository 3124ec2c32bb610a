"""What the reliability suite's worker processes run, and the zygote that
starts them.

Importing runtrack, SQLAlchemy and the drivers costs about a second of CPU,
which the suite cannot pay for each of its hundreds of processes on a small
machine. So one zygote process imports them once (``python
reliability_workers.py``) and forks a worker for each request it receives
from the test over a UNIX socket, together with the worker's end of a socket
pair: the worker's channel to the test. The zygote is single-threaded and
never opens a database connection, so its forks start clean.

A worker reports one line per event; a SIGKILL mid-line loses that line only.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from runtrack import InvalidTransition, JobBusy, LeaseLost, Ledger, Runner, RunStatus

HEARTBEAT = 0.05
#: Load runs share a few jobs, each with this many lease slots.
LOAD_CONCURRENCY = 3


class Channel:
    """The worker's end of its socket pair: lines out, lines in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("r", encoding="utf-8")

    def say(self, *parts: object) -> None:
        self.sock.sendall((" ".join(str(p) for p in parts) + "\n").encode())

    def read(self) -> str:
        return self.reader.readline().rstrip("\n")


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline``: CLOCK_MONOTONIC is
    one clock for every process of the machine, so racers in several
    processes wake together (the last half millisecond is spun)."""
    while (left := deadline - time.monotonic()) > 0.0005:
        time.sleep(left - 0.0005)
    while time.monotonic() < deadline:
        pass


# -- crashes ---------------------------------------------------------------------------


def crash_worker(out: Channel, url: str, jobs: list[str], seed: int, stale_after: float) -> int:
    """Run short runs of random jobs forever (counters, items flushed in
    batches of 20, sometimes a checkpoint) until killed."""
    rng = random.Random(seed)
    ledger = Ledger(
        url,
        heartbeat_interval=HEARTBEAT,
        stale_after=stale_after,
        item_batch_size=20,
        migrate=False,
    )
    while True:
        try:
            with ledger.run(rng.choice(jobs)) as run:
                out.say("started", run.id)
                for i in range(rng.randint(1, 120)):
                    run.count("n")
                    run.item(f"item-{i}", "success")
                    if rng.random() < 0.05:
                        run.save_checkpoint({"at": i})
                    if rng.random() < 0.1:
                        time.sleep(rng.uniform(0, 0.02))
            out.say("finished", run.id, run.status)
        except JobBusy:
            time.sleep(0.01)
        except LeaseLost as lost:  # reaped by another worker after a slow heartbeat
            out.say("lost", lost.run_id)


# -- races -----------------------------------------------------------------------------


def race_worker(out: Channel, url: str, role: str) -> int:
    """Another process's side of the finish/cancel/reap races: for each
    ``run_id deadline stale_after`` line, act on the run at the deadline and
    answer whether this process made its terminal transition."""
    with Ledger(url, heartbeat_interval=HEARTBEAT, migrate=False) as ledger:
        out.say("ready")
        while line := out.read():
            run_id, deadline, stale_after = line.split()
            sleep_until(float(deadline))
            won, seen = race_act(ledger, role, int(run_id), float(stale_after))
            out.say("result", role, int(won), seen)
    return 0


def race_act(ledger: Ledger, role: str, run_id: int, stale_after: float) -> tuple[bool, str]:
    """One racer's move on a run: whether it made the terminal transition,
    and what it saw."""
    try:
        if role == "finish":
            record = ledger.finish_run(run_id, RunStatus.FAILED, error="finished by id")
            return True, record.status
        if role == "reap":
            return run_id in ledger.reap(stale_after), "reaped"
        if role == "cancel":
            record = ledger.cancel(run_id, by=f"racer-{os.getpid()}")
            return record.status is RunStatus.CANCELLED, record.status
    except (InvalidTransition, LeaseLost) as lost:
        return False, type(lost).__name__
    raise ValueError(role)


# -- two runners, one job ------------------------------------------------------------------


def runner_worker(out: Channel, url: str, job: str, seconds: float, name: str) -> int:
    """A runner whose one job is due every 20 ms, cycling for ``seconds``;
    each run looks, as it starts and as it ends, for another active run of
    its job in the database."""
    seen: Counter[str] = Counter()
    with Ledger(url, heartbeat_interval=HEARTBEAT, migrate=False) as ledger:
        runner = Runner(ledger, worker_id=name, reap_every=None, prune_every=None, jitter=0)

        def look() -> None:
            seen["double" if len(ledger.active_runs(job)) > 1 else "alone"] += 1

        @runner.job(job, provider="race", every=0.02)
        def work(run: Any) -> None:
            look()
            run.count("ran")
            time.sleep(0.005)
            look()

        out.say("ready")
        sleep_until(float(out.read()))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            summary = runner.run_once()
            seen["ran"] += summary.ran
            seen["skipped_busy"] += summary.skipped_busy
    out.say("done", json.dumps(seen))
    return 0


# -- load ----------------------------------------------------------------------------------


def load_worker(out: Channel, url: str, worker: int, runs: int, jobs: int) -> int:
    """``runs`` runs with counters and items, started at the test's signal;
    report what each recorded and every exception that reached this code."""
    rng = random.Random(worker)
    expected: dict[int, dict[str, Any]] = {}
    errors: Counter[str] = Counter()
    busy = 0
    with Ledger(url, heartbeat_interval=HEARTBEAT, item_batch_size=25, migrate=False) as ledger:
        out.say("ready")
        sleep_until(float(out.read()))
        while len(expected) + sum(errors.values()) < runs:
            try:
                run_id, recorded = one_load_run(ledger, rng, f"load:{rng.randrange(jobs)}")
            except JobBusy:
                busy += 1
                continue
            except Exception as exc:  # must not happen: reported to the test
                errors[f"{type(exc).__name__}: {str(exc)[:300]}"] += 1
                continue
            expected[run_id] = recorded
    out.say("done", json.dumps({"runs": expected, "errors": errors, "busy": busy}))
    return 0


def one_load_run(ledger: Ledger, rng: random.Random, job: str) -> tuple[int, dict[str, Any]]:
    counters: Counter[str] = Counter()
    items: Counter[str] = Counter()
    with ledger.run(job, provider="load", concurrency=LOAD_CONCURRENCY) as run:
        for i in range(rng.randint(0, 60)):
            name = rng.choice(("pages", "offers", "bytes"))
            n = rng.randint(1, 5)
            run.count(name, n)
            counters[name] += n
            status = rng.choice(("success", "success", "skipped", "not_found"))
            run.item(f"{run.id}-{i}", status)
            items[status] += 1
    return run.id, {"counters": counters, "items": items, "status": str(run.status)}


# -- the zygote ----------------------------------------------------------------------------

WORKERS: dict[str, Callable[..., int]] = {
    "crash": crash_worker,
    "race": race_worker,
    "runner": runner_worker,
    "load": load_worker,
}


def _child(channel_fd: int, name: str, args: list[Any]) -> None:
    """In the forked child: become the worker; never return."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(2, 1)  # stdout is the zygote's answer pipe: never write to it
        code = WORKERS[name](Channel(socket.socket(fileno=channel_fd)), *args)
    except BaseException as exc:  # a worker's crash is reported on stderr
        print(f"worker {name} {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        os._exit(code)


def zygote(control_fd: int) -> None:
    """Fork one worker per request (a SOCK_SEQPACKET message ``[name, args]``
    carrying the worker's channel fd), answering its pid; children are reaped
    by the kernel (SIGCHLD ignored). Returns when the test closes the socket."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    control = socket.socket(fileno=control_fd)
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 16, 1)
        if not message:
            return
        name, args = json.loads(message)
        pid = os.fork()
        if pid == 0:
            control.close()
            _child(fds[0], name, args)
        os.close(fds[0])
        control.sendall(f"{pid}\n".encode())


if __name__ == "__main__":
    # What every worker needs, imported once here rather than in each fork.
    import psycopg  # noqa: F401
    import pymysql  # noqa: F401
    import sqlalchemy.dialects.mysql.pymysql
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

    zygote(int(sys.argv[1]))
