"""The machinery of the multi-host tier: a private PostgreSQL server, three
simulated hosts (network namespaces on a private subnet), runner processes
inside them with their own clock skew, the faults, and a sampler that reads
the database from outside the hosts throughout.

Everything is made by the tests and removed at the end; a previous run that
died is cleaned up first (fixed names: ``rt-host-N``, ``rt-hN``, ``rt-br0``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
SUBNET = "10.231.0"
MACHINE_IP = f"{SUBNET}.1"
BRIDGE = "rt-br0"
PG_PORT = 55432
PG_DIR = Path(tempfile.gettempdir()) / "rt-hosts-pg"
#: The figures of the session's fleet run (printed by conftest.py).
FIGURES: dict[str, Any] = {}


@dataclass(frozen=True)
class Sizes:
    mode: str
    per_host: int  # runner processes in each host
    warmup: float  # seconds of fleet time before the first fault
    partitions: int
    host_deaths: int
    restarts: int
    settle: float  # seconds of fleet time between two faults
    triggers: int = 3  # manual triggers after the warmup and after each fault
    backfill_windows: int = 12  # of one backfill queued after the warmup


DEFAULT = Sizes("default", per_host=2, warmup=8, partitions=2, host_deaths=1, restarts=1, settle=3)
LONG = Sizes(
    "long",
    per_host=3,
    warmup=10,
    partitions=20,
    host_deaths=5,
    restarts=3,
    settle=8,
    triggers=4,
    backfill_windows=48,
)


SKEWS = ("-300", "+0", "+300")  # seconds, one per host


def run(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def as_postgres(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # initdb and the server refuse to run as root.
    prefix = ("runuser", "-u", "postgres", "--") if os.geteuid() == 0 else ()
    return run(*prefix, *cmd, check=check, timeout=120)


def pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries (postgresql package) found")
    return versions[-1].parent


def why_not() -> str | None:
    """Why this machine cannot run the tier (``None``: it can)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    for tool in ("ip", "faketime", "runuser"):
        if shutil.which(tool) is None:
            return f"the {tool!r} command is missing"
    try:
        pg_bin()
    except RuntimeError as exc:
        return str(exc)
    probe = run("ip", "netns", "add", "rt-probe", check=False)
    if probe.returncode != 0:
        return f"cannot make network namespaces: {probe.stderr.strip()[:120]}"
    run("ip", "netns", "del", "rt-probe", check=False)
    return None


# -- the private PostgreSQL server ---------------------------------------------------------


class PrivatePostgres:
    """A throwaway PostgreSQL cluster of the tier's own, on its own port,
    listening on 127.0.0.1 and the machine side of the hosts' subnet."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.data = PG_DIR / "data"
        self.log = PG_DIR / "server.log"
        self.url = f"postgresql://postgres@127.0.0.1:{PG_PORT}/runtrack"
        # What the hosts use: libpq gives up connecting after 5 s, and
        # keepalives find a dead peer, so a partition does not hang forever.
        self.hosts_url = (
            f"postgresql://postgres@{MACHINE_IP}:{PG_PORT}/runtrack"
            "?connect_timeout=5&keepalives=1&keepalives_idle=5&keepalives_interval=2"
            "&keepalives_count=3"
        )
        self.restarts = 0

    def start(self) -> None:
        self.destroy()
        PG_DIR.mkdir(mode=0o700)
        shutil.chown(PG_DIR, "postgres", "postgres")
        as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        conf = self.data / "postgresql.conf"
        with conf.open("a", encoding="utf-8") as out:
            out.write(
                f"listen_addresses = '127.0.0.1,{MACHINE_IP}'\n"
                f"port = {PG_PORT}\n"
                f"unix_socket_directories = '{PG_DIR}'\n"
                "max_connections = 200\n"
                "fsync = off\n"
                # A partitioned client's open transaction must not hold its
                # row locks for the kernel's TCP timeout (minutes).
                "idle_in_transaction_session_timeout = '3s'\n"
                "tcp_keepalives_idle = 5\ntcp_keepalives_interval = 2\ntcp_keepalives_count = 3\n"
            )
        with (self.data / "pg_hba.conf").open("a", encoding="utf-8") as out:
            out.write(f"host all all {SUBNET}.0/24 trust\n")
        self._ctl("start", "-w", "-l", str(self.log))
        admin = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{PG_PORT}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE runtrack")
        admin.dispose()

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart`` under load: every connection is cut."""
        self._ctl("restart", "-w", "-m", mode, "-l", str(self.log))
        self.restarts += 1

    def _ctl(self, *args: str) -> None:
        as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), *args)

    def destroy(self) -> None:
        """Stop and remove the cluster; nothing if there is none (idempotent)."""
        if (self.data / "postmaster.pid").exists():
            as_postgres(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "stop",
                "-m",
                "immediate",
                check=False,
            )
        shutil.rmtree(PG_DIR, ignore_errors=True)


# -- the hosts -----------------------------------------------------------------------------


@dataclass
class Host:
    index: int
    skew: str

    @property
    def ns(self) -> str:
        return f"rt-host-{self.index}"

    @property
    def link(self) -> str:  # the machine's end of the host's cable
        return f"rt-h{self.index}"

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{10 + self.index}"

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.ns, *cmd, check=check)


class Network:
    """Three hosts joined to the machine by veth pairs on one bridge."""

    def __init__(self, count: int = 3) -> None:
        self.hosts = [Host(i, SKEWS[i % len(SKEWS)]) for i in range(count)]
        self.netem = False

    def create(self) -> None:
        self.destroy()
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{MACHINE_IP}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        for host in self.hosts:
            run("ip", "netns", "add", host.ns)
            run(
                "ip",
                "link",
                "add",
                host.link,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.ns,
            )
            run("ip", "link", "set", host.link, "master", BRIDGE)
            run("ip", "link", "set", host.link, "up")
            host.exec("ip", "link", "set", "lo", "up")
            host.exec("ip", "addr", "add", f"{host.ip}/24", "dev", "eth0")
            host.exec("ip", "link", "set", "eth0", "up")

    def destroy(self) -> None:
        """Remove every namespace and link of this tier (idempotent)."""
        names = run("ip", "netns", "list", check=False).stdout.split()
        for name in names:
            if name.startswith("rt-host-"):
                for pid in run("ip", "netns", "pids", name, check=False).stdout.split():
                    _kill(int(pid))
                run("ip", "netns", "del", name, check=False)
        for host in self.hosts:
            run("ip", "link", "del", host.link, check=False)
        run("ip", "link", "del", BRIDGE, check=False)

    def partition(self, host: Host, down: bool) -> None:
        run("ip", "link", "set", host.link, "down" if down else "up")

    def slow(self, host: Host, delay_ms: int = 40, loss: float = 1.0) -> bool:
        """``tc netem`` on the host's link (both directions); False where unavailable."""
        done = host.exec(
            "tc",
            "qdisc",
            "add",
            "dev",
            "eth0",
            "root",
            "netem",
            "delay",
            f"{delay_ms}ms",
            "loss",
            f"{loss}%",
            check=False,
        )
        self.netem = done.returncode == 0
        return self.netem


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- runner processes ----------------------------------------------------------------------


class Fleet:
    """Runner processes, ``per_host`` in each host, each under its host's skew."""

    def __init__(self, network: Network, url: str, folder: Path, per_host: int) -> None:
        self.network = network
        self.url = url
        self.folder = folder
        self.per_host = per_host
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.generation: Counter[int] = Counter()
        self.deaths = 0

    def start_host(self, host: Host) -> None:
        self.generation[host.index] += 1
        for n in range(self.per_host):
            worker = f"h{host.index}-p{n}-g{self.generation[host.index]}"
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PYTHONPATH": os.pathsep.join([str(HERE), str(SRC)]),
                # Only the wall clock is skewed, as on a real machine.
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "FAKETIME_NO_CACHE": "1",
            }
            log = (self.folder / f"{worker}.log").open("wb")
            self.procs[worker] = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    host.ns,
                    "faketime",
                    "-f",
                    f"{host.skew}s",
                    sys.executable,
                    "-m",
                    "hosts_runner",
                    self.url,
                    worker,
                    str(self.folder / "events.jsonl"),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()

    def start(self) -> None:
        for host in self.network.hosts:
            self.start_host(host)

    def kill_host(self, host: Host) -> int:
        """SIGKILL every process of the host at once (a host death)."""
        pids = [int(p) for p in run("ip", "netns", "pids", host.ns).stdout.split()]
        for pid in pids:
            _kill(pid)
        for worker, proc in self.procs.items():
            if worker.startswith(f"h{host.index}-"):
                proc.wait(timeout=10)
        self.deaths += 1
        return len(pids)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM every process of every host (graceful), SIGKILL what is left.
        By pid in the namespace: ``faketime`` runs the runner as its child."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while self.pids() and time.monotonic() < end:
            time.sleep(0.2)
        for pid in self.pids():
            _kill(pid)
        for proc in self.procs.values():
            proc.wait(timeout=10)

    def pids(self) -> list[int]:
        found = []
        for host in self.network.hosts:
            found += [int(p) for p in run("ip", "netns", "pids", host.ns).stdout.split()]
        return found

    def events(self) -> list[dict[str, Any]]:
        path = self.folder / "events.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a SIGKILL
                continue
        return rows

    def wait_ready(self, count: int, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sum(e["kind"] == "ready" for e in self.events()) >= count:
                return
            dead = [w for w, p in self.procs.items() if p.poll() is not None]
            if dead:
                log = (self.folder / f"{dead[0]}.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"runner {dead[0]} exited early:\n{log}")
            time.sleep(0.2)
        raise AssertionError("runners did not become ready")


# -- the sampler ---------------------------------------------------------------------------


@dataclass
class Samples:
    reads: int = 0
    failed_reads: int = 0
    max_running: Counter[str] = field(default_factory=Counter)
    max_running_provider: Counter[str] = field(default_factory=Counter)
    over_limit: list[str] = field(default_factory=list)
    counter_went_back: list[str] = field(default_factory=list)
    last_n: dict[int, float] = field(default_factory=dict)
    terminal: dict[int, tuple[str, float]] = field(default_factory=dict)
    changed_after_end: list[str] = field(default_factory=list)


class Sampler:
    """Reads the runs from outside the hosts every ``every`` seconds: running
    runs per job against the job's concurrency and per limited provider
    against its limit, every run's counter ``n`` (never lower than last
    seen), and finished runs (never change again)."""

    def __init__(
        self,
        url: str,
        limits: dict[str, int],
        provider_limits: dict[str, int],
        every: float = 0.2,
    ) -> None:
        self.engine = sa.create_engine(
            url.replace("postgresql://", "postgresql+psycopg://"), pool_pre_ping=True
        )
        self.limits = limits
        self.provider_limits = provider_limits
        self.every = every
        self.samples = Samples()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Samples:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.engine.dispose()
        return self.samples

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.read_once()
            except sa.exc.DBAPIError:  # the server is restarting
                self.samples.failed_reads += 1
                self.engine.dispose()
            self._stop.wait(self.every)

    def read_once(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, job_key, provider, status, counters FROM runs"
                " WHERE finished_at IS NULL OR id > %(low)s",
                {"low": max(self.samples.terminal, default=0) - 500},
            ).all()
        s = self.samples
        s.reads += 1
        running: Counter[str] = Counter()
        by_provider: Counter[str] = Counter()
        for run_id, job, provider, status, counters in rows:
            n = float((counters or {}).get("n", 0))
            if n < s.last_n.get(run_id, 0):
                s.counter_went_back.append(f"run {run_id}: n {s.last_n[run_id]} -> {n}")
            s.last_n[run_id] = max(n, s.last_n.get(run_id, 0))
            if status == "running":
                running[job] += 1
                by_provider[provider] += 1
            elif status not in ("pending",):
                seen = s.terminal.setdefault(run_id, (status, n))
                if seen != (status, n):
                    s.changed_after_end.append(f"run {run_id}: {seen} -> {(status, n)}")
        for job, count in running.items():
            s.max_running[job] = max(s.max_running[job], count)
            if count > self.limits.get(job, 1):
                s.over_limit.append(f"{job}: {count} running")
        for provider, limit in self.provider_limits.items():
            count = by_provider[provider]
            s.max_running_provider[provider] = max(s.max_running_provider[provider], count)
            if count > limit:
                s.over_limit.append(f"provider {provider}: {count} running")


def crowded(runs: Sequence[Any], limit: int) -> list[dict[str, Any]]:
    """Each moment more than ``limit`` runs were recorded running together:
    its length in seconds and the runs (what an overlap assertion shows).
    The times are each writer's estimate of the database's clock (see
    DatabaseClock), so a reaper's finish and the next start may disagree by
    milliseconds."""
    edges = sorted(
        [(r.finished_at, -1, r) for r in runs if r.started_at and r.finished_at]
        + [(r.started_at, 1, r) for r in runs if r.started_at],
        key=lambda e: (e[0], e[1]),
    )
    found: list[dict[str, Any]] = []
    active: dict[int, Any] = {}
    since, together = None, {}
    for at, step, run in edges:
        if step > 0:
            active[run.id] = run
        else:
            active.pop(run.id, None)
        if len(active) > limit and since is None:
            since, together = at, dict(active)
        elif len(active) <= limit and since is not None:
            found.append(
                {
                    "seconds": (at - since).total_seconds(),
                    "runs": [
                        (r.id, r.job_key, r.worker_id, r.triggered_by, r.status,
                         r.error_type, str(r.started_at), str(r.finished_at))
                        for r in together.values()
                    ],
                }
            )  # fmt: skip
            since = None
    return found


def overlaps(runs: Sequence[Any], limit: int) -> list[float]:
    """The lengths (seconds) of the moments more than ``limit`` runs of one
    job were running, by the runs' recorded start and finish times."""
    return [c["seconds"] for c in crowded(runs, limit)]
