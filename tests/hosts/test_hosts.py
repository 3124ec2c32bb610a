"""Runners on three simulated hosts share one PostgreSQL server, with the
database as their only coordinator, while hosts are partitioned, die and
see the database restart, each host with its own clock skew.

What is checked, from the database and from a sampler outside the hosts:
never more running runs of a job than its ``concurrency``, nor of the
limited provider than its limit; no schedule tick run twice, and every tick
skipped because its job or provider was busy recorded on the job row with its
reason, as the runners' logs count them; every queued
run (manual triggers, backfill windows) executed exactly once or ended by a
fault, and the backfill's windows tiling its range (see hosts_queue.py);
every run a worker started is in the database; no run left active after the
final reap; no counter lower than a value seen before; a finished run never
changes again (fenced writes of partitioned workers are refused, not
applied), and nothing committed is lost across restarts.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hosts_queue import Queued, check_queued
from hosts_runner import FLEET, HEARTBEAT, PROVIDER_LIMITS, STALE_AFTER
from hosts_support import (
    FIGURES,
    Fleet,
    Host,
    Network,
    PrivatePostgres,
    Sampler,
    Sizes,
    crowded,
    overlaps,
)

from runtrack import Ledger

pytestmark = pytest.mark.hosts

ACTIVE = ("pending", "running")
#: Seconds two writers' estimates of the database clock may disagree by.
CLOCK_ERROR = 0.5


def engine_of(server: PrivatePostgres) -> sa.Engine:
    return sa.create_engine(
        server.url.replace("postgresql://", "postgresql+psycopg://"), pool_pre_ping=True
    )


def running_of(engine: sa.Engine, host: Host) -> list[int]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id FROM runs WHERE status = 'running' AND worker_id LIKE %(w)s",
            {"w": f"h{host.index}-%"},
        ).all()
    return [r[0] for r in rows]


def statuses(engine: sa.Engine, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, status FROM runs WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": ids},
        ).all()
    return {r[0]: r[1] for r in rows}


def reaped_states(engine: sa.Engine, ids: list[int]) -> dict[int, tuple[str, str | None, Any]]:
    """The runs among ``ids`` that the reaper finalized, as they are now (a
    run may have finished by itself just before its host was cut off)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, status, error_type, counters FROM runs"
                " WHERE id IN :ids AND error_type = 'heartbeat_timeout'"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": ids},
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def wait_for(what: Any, timeout: float, step: float = 0.2) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if found := what():
            return found
        time.sleep(step)
    return what()


class Faults:
    """The faults, each waiting for its precondition and checking its effect."""

    def __init__(
        self, server: PrivatePostgres, network: Network, fleet: Fleet, queued: Queued
    ) -> None:
        self.server, self.network, self.fleet, self.queued = server, network, fleet, queued
        self.engine = engine_of(server)
        self.partitions = 0
        #: Runs of partitioned hosts as the others reaped them: run id ->
        #: (status, error_type, counters); none may change afterwards.
        self.reaped_runs: dict[int, tuple[str, str | None, Any]] = {}

    def partition(self, host: Host) -> None:
        """Cut the host off for longer than ``stale_after`` while it holds
        running runs: the other hosts reap them; then bring it back."""
        held = wait_for(lambda: running_of(self.engine, host), timeout=15)
        assert held, f"host {host.index} ran nothing in 15 s"
        self.network.partition(host, down=True)
        try:
            reaped = wait_for(
                lambda: all(s not in ACTIVE for s in statuses(self.engine, held).values()),
                timeout=STALE_AFTER * 4,
            )
            assert reaped, f"runs {held} of partitioned host {host.index} were not reaped"
            time.sleep(1.0)  # the others carry on while it is still cut off
            self.reaped_runs.update(reaped_states(self.engine, held))
        finally:
            self.network.partition(host, down=False)
        self.partitions += 1

    def kill(self, host: Host) -> None:
        """SIGKILL every process of the host; the others reap its runs; it reboots."""
        held = running_of(self.engine, host)
        self.fleet.kill_host(host)
        reaped = wait_for(
            lambda: all(s not in ACTIVE for s in statuses(self.engine, held).values()),
            timeout=STALE_AFTER * 4,
        )
        assert reaped, f"runs {held} of dead host {host.index} were not reaped"
        self.fleet.start_host(host)

    def restart(self, mode: str) -> None:
        self.engine.dispose()
        self.server.restart(mode)
        self.queued.reconnect()


def test_fleet_on_three_hosts(
    machine: tuple[PrivatePostgres, Network], sizes: Sizes, tmp_path: Path
) -> None:
    server, network = machine
    began = time.monotonic()
    fleet = Fleet(network, server.hosts_url, tmp_path, sizes.per_host)
    limits = {key: spec["concurrency"] for key, spec in FLEET.items()}
    sampler = Sampler(server.url, limits, PROVIDER_LIMITS)
    queued = Queued(server.url)
    queued.limit()  # before the runners start: their ticks see it at once
    faults = Faults(server, network, fleet, queued)
    slow = network.hosts[-1]
    netem = network.slow(slow)
    fleet.start()
    try:
        fleet.wait_ready(len(network.hosts) * sizes.per_host)
        sampler.start()
        time.sleep(sizes.warmup)
        queued.backfill(sizes.backfill_windows)
        queued.trigger(sizes.triggers)
        plan = (
            [("partition", i) for i in range(sizes.partitions)]
            + [("kill", i) for i in range(sizes.host_deaths)]
            + [("restart", i) for i in range(sizes.restarts)]
        )
        # Interleave the kinds: partition, kill, restart, partition, ...
        plan.sort(key=lambda step: step[1] / max(1, sum(k == step[0] for k, _ in plan)))
        hosts = itertools.cycle(network.hosts)
        for kind, i in plan:
            if kind == "partition":
                faults.partition(next(hosts))
            elif kind == "kill":
                faults.kill(next(hosts))
            else:
                faults.restart("fast" if i % 2 == 0 else "immediate")
            queued.trigger(sizes.triggers)
            time.sleep(sizes.settle)
        time.sleep(sizes.settle)
        # Every queued run is claimed before the fleet stops (else: stuck).
        wait_for(lambda: queued.pending() == 0, timeout=30)
    finally:
        fleet.stop()
        samples = sampler.stop()
        queued.close()
    fleet_seconds = time.monotonic() - began

    # The final reap, from outside the hosts, once every heartbeat is stale.
    time.sleep(STALE_AFTER + 0.5)
    with Ledger(
        server.url, heartbeat_interval=HEARTBEAT, stale_after=STALE_AFTER, migrate=False
    ) as ledger:
        ledger.reap(timedelta(seconds=STALE_AFTER))
    engine = engine_of(server)
    with engine.connect() as conn:
        runs = conn.exec_driver_sql(
            "SELECT id, job_key, provider, status, worker_id, triggered_by, counters, params,"
            " backfill_id, window_start, window_end, started_at, finished_at, error_type,"
            " heartbeat_at, now() AS server_now FROM runs ORDER BY id"
        ).all()
        # Issue 21: each tick a runner claimed but skipped (busy) is counted on its job row.
        skipped_db = {
            r.key: (r.ticks_skipped, r.last_skip_reason)
            for r in conn.exec_driver_sql(
                "SELECT key, ticks_skipped, last_skip_reason FROM jobs"
            ).all()
            if r.ticks_skipped
        }
    engine.dispose()
    faults.engine.dispose()
    events = fleet.events()
    by_id = {r.id: r for r in runs}

    # Every host's clock was skewed as asked, and the runners used the database's.
    clocks = [e for e in events if e["kind"] == "clock"]
    for e in clocks:
        host = network.hosts[int(e["worker"][1])]
        local = datetime.fromisoformat(e["local"])
        database = datetime.fromisoformat(e["database"])
        assert abs((local - database).total_seconds() - int(host.skew)) < 30, e

    started = {e["run_id"] for e in events if e["kind"] == "started"}
    lost = sorted(started - by_id.keys())
    stuck = [r.id for r in runs if r.status in ACTIVE]
    over = [o for k in limits for o in overlaps([r for r in runs if r.job_key == k], limits[k])]
    # Longer than the clock estimates' error: two runs really held one slot.
    double_run = sum(o > CLOCK_ERROR for o in over)
    provider_over = [
        o
        for p, most in PROVIDER_LIMITS.items()
        for o in overlaps([r for r in runs if r.provider == p], most)
    ]
    over_provider_limit = sum(o > CLOCK_ERROR for o in provider_over)
    queue_figures, queue_problems = check_queued(
        queued, runs, Counter(e["run_id"] for e in events if e["kind"] == "started")
    )
    # Skipped ticks, as the runners logged them (the job key is the line's 2nd
    # word) and as the job rows count them. A runner records the skip first
    # and logs it then, so every line that says it was recorded is in the
    # database: per job, the database's count is at least the logged one. It
    # may be more: a process killed (host death, or a stop that had to
    # SIGKILL) between the commit and its line loses that one line, and a
    # write reported failed ("not recorded", the database restarting) may
    # have committed all the same. With one attempt at a time per runner, a
    # killed process loses at most one such line; so the excess is at most
    # the killed processes plus the lines that said "not recorded".
    skips = [e for e in events if e["kind"] == "skipped"]
    skipped = Counter(e["message"].split()[1] for e in skips if e["recorded"])
    unrecorded = Counter(e["message"].split()[1] for e in skips if not e["recorded"])
    killed = {e["worker"] for e in events if e["kind"] == "ready"} - {
        e["worker"] for e in events if e["kind"] == "stopped"
    }
    in_db = {k: n for k, (n, _) in skipped_db.items()}
    skipped_below_log = {k: (in_db.get(k, 0), n) for k, n in skipped.items() if in_db.get(k, 0) < n}
    skipped_excess = sum(in_db.values()) - sum(skipped.values())
    unexplained_skips = skipped_excess > len(killed) + sum(unrecorded.values())
    skip_reasons = {k: reason for k, (_, reason) in skipped_db.items()}
    # A reason names the held runs or the provider's limit (runner/skips.py).
    told = ("busy: ", "provider ")
    vague_skips = {k: why for k, why in skip_reasons.items() if not (why or "").startswith(told)}
    ticks = Counter(
        (r.job_key, (r.counters or {}).get("tick"))
        for r in runs
        if r.triggered_by == "schedule" and (r.counters or {}).get("tick") is not None
    )
    double_ticks = {k: n for k, n in ticks.items() if n > 1}
    # Nothing the sampler saw finished changed or vanished (restarts, fencing).
    committed_lost = [
        i
        for i, (status, n) in samples.terminal.items()
        if i not in by_id
        or by_id[i].status != status
        or float((by_id[i].counters or {}).get("n", 0)) != n
    ]
    fenced = [e for e in events if e["kind"] == "fenced"]
    # The partitioned workers' writes about their reaped runs were refused.
    partitioned_changed = [
        i
        for i, was in faults.reaped_runs.items()
        if (by_id[i].status, by_id[i].error_type, by_id[i].counters) != was
    ]
    FIGURES.update(
        mode=sizes.mode,
        hosts=len(network.hosts),
        runners=len(fleet.procs),
        runs=len(runs),
        ticks=sum(ticks.values()),
        ticks_skipped_busy=dict(skipped),
        ticks_skipped_db=in_db,
        ticks_skipped_not_recorded=dict(unrecorded),
        ticks_skipped_last_reason=skip_reasons,
        killed_processes=len(killed),
        **queue_figures,
        provider_limit=dict(PROVIDER_LIMITS),
        provider_max_running=dict(samples.max_running_provider),
        provider_over_limit_db=over_provider_limit,
        partitions=faults.partitions,
        host_deaths=fleet.deaths,
        restarts=server.restarts,
        netem=netem,
        partitioned_runs_reaped=len(faults.reaped_runs),
        fenced_writes_refused=len(fenced),
        reaped=sum(r.error_type == "heartbeat_timeout" for r in runs),
        sampler_reads=samples.reads,
        max_running=dict(samples.max_running),
        lost=len(lost),
        stuck=len(stuck),
        double_run=double_run + len(samples.over_limit),
        double_ticks=len(double_ticks),
        timestamp_overlaps_ms=sorted(round(o * 1000, 1) for o in over),
        seconds=round(fleet_seconds, 1),
    )
    assert not lost, f"runs started by workers but not in the database: {lost}"
    assert not stuck, f"runs still active after the final reap: {[by_id[i] for i in stuck]}"
    assert double_run == 0 and not samples.over_limit, (
        samples.over_limit[:5],
        [
            c
            for k, most in limits.items()
            for c in crowded([r for r in runs if r.job_key == k], most)
            if c["seconds"] > CLOCK_ERROR
        ],
    )
    assert not double_ticks, double_ticks
    # (database count, logged count) of jobs whose logged skips are not all recorded
    assert not skipped_below_log, skipped_below_log
    assert not unexplained_skips, (skipped_excess, len(killed), dict(unrecorded))
    assert not vague_skips, vague_skips
    assert over_provider_limit == 0, [
        c
        for p, most in PROVIDER_LIMITS.items()
        for c in crowded([r for r in runs if r.provider == p], most)
        if c["seconds"] > CLOCK_ERROR
    ]
    assert not queue_problems, queue_problems
    assert not samples.counter_went_back, samples.counter_went_back[:5]
    assert not samples.changed_after_end, samples.changed_after_end[:5]
    assert not committed_lost, committed_lost[:5]
    assert not partitioned_changed, partitioned_changed
    assert samples.reads > 0 and len(runs) > 0
    if faults.reaped_runs:
        assert fenced, "no write of a partitioned worker was refused"
