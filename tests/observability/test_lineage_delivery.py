"""A lineage endpoint that is down never fails or slows a run: events are
sent from a bounded queue on the listener's own thread."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from lineage_support import file_listener_at
from openlineage.client import OpenLineageClient
from openlineage.client.transport.http import HttpConfig, HttpTransport

from runtrack import Ledger, RunStatus
from runtrack.config import Settings
from runtrack.lineage.listener import OpenLineageListener

RUNS = 50


def timed_run(ledger: Ledger, job: str, i: int = 0) -> float:
    """Seconds for one run of ``job`` that counts and records an item."""
    started = time.monotonic()
    with ledger.run(job, provider="acme") as run:
        run.count("offers", i)
        run.item(f"offer-{i}", "success")
    return time.monotonic() - started


def timed_runs(ledger: Ledger, job: str, n: int = RUNS) -> float:
    return sum(timed_run(ledger, job, i) for i in range(n))


def dead_endpoint(port: int, **options: float | int) -> OpenLineageListener:
    settings = Settings(openlineage_url=f"http://127.0.0.1:{port}").validated()
    return OpenLineageListener.from_settings(settings, **options)


def test_runs_finish_in_normal_time_with_the_endpoint_down(
    ledger: Ledger, db_url: str, closed_port: int, tmp_path: Path, backend: str
) -> None:
    """Runs alternate between a ledger whose lineage goes to a file and one
    whose lineage goes to a refused port, so machine load hits both alike."""
    healthy_listener = file_listener_at(tmp_path / "events.jsonl")
    ledger.events.add(healthy_listener)
    dead = dead_endpoint(closed_port, close_timeout=1.0)
    healthy: list[float] = []
    broken: list[float] = []
    with Ledger(db_url, heartbeat_interval=0.05, listeners=[dead]) as other:
        for i in range(RUNS):
            healthy.append(timed_run(ledger, "acme:file", i))
            broken.append(timed_run(other, "acme:dead-endpoint", i))
        started = time.monotonic()
    closing = time.monotonic() - started  # other.close() closed the dead listener
    assert healthy_listener.flush(10)
    print(
        f"\n[{backend}] {RUNS} runs: {sum(healthy):.3f} s with lineage to a file, "
        f"{sum(broken):.3f} s with the endpoint down (slowest run {max(broken):.3f} s); "
        f"closing took {closing:.2f} s; {dead.stats}"
    )

    # A send to a refused port retries for about 9 s: had one happened on a
    # run's thread, that run alone would take longer than all of these.
    assert max(broken) < 3.0
    assert sum(broken) < 2 * sum(healthy) + 1.0
    assert closing < 3.0  # close_timeout (1 s) plus the ledger's own close
    assert dead.stats.sent == 0
    assert healthy_listener.stats.sent == 2 * RUNS
    runs = ledger.list_runs(job="acme:dead-endpoint", limit=RUNS).items
    assert [r.status for r in runs] == [RunStatus.SUCCESS] * RUNS


def test_each_failed_send_is_logged_with_the_run_fields(
    ledger: Ledger, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # No retries: every send fails at once, so each failure is seen quickly.
    transport = HttpTransport(
        HttpConfig(url=f"http://127.0.0.1:{closed_port}", timeout=1.0, retry={"total": 0})
    )
    listener = OpenLineageListener(OpenLineageClient(transport=transport))
    ledger.events.add(listener)
    caplog.set_level(logging.WARNING, logger="runtrack.lineage")
    with ledger.run("acme:refused", provider="acme") as run:
        run.count("offers")
    assert listener.flush(10)

    assert (listener.stats.sent, listener.stats.failed) == (0, 2)
    failures = [r for r in caplog.records if "could not be sent" in r.getMessage()]
    assert [(r.run_id, r.job, r.provider) for r in failures] == [
        (run.id, "acme:refused", "acme")
    ] * 2
    assert [r.status for r in failures] == ["running", "success"]
    assert ledger.get_run(run.id).status is RunStatus.SUCCESS


def test_a_full_queue_drops_events_with_one_warning(
    ledger: Ledger, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # The first send retries a refused connection for seconds; meanwhile the
    # two-slot queue fills and further events are dropped, not waited for.
    listener = dead_endpoint(closed_port, queue_size=2, close_timeout=0.2)
    ledger.events.add(listener)
    caplog.set_level(logging.WARNING, logger="runtrack.lineage")
    elapsed = timed_runs(ledger, "acme:flood", n=10)
    listener.close()

    assert elapsed < 5.0
    assert listener.stats.dropped >= 20 - 1 - 2  # all but the one in flight and the queued two
    drops = [r for r in caplog.records if "dropped" in r.getMessage() and hasattr(r, "run_id")]
    assert len(drops) == 1  # once per episode, not once per event
    assert drops[0].job == "acme:flood"
    closing = [r for r in caplog.records if "unsent" in r.getMessage()]
    assert len(closing) == 1
