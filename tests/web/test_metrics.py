"""/metrics scraped from a live server agrees with the database, and the
scrape never reads the run history."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from datetime import UTC
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from web_seed import JOB_A, JOB_C, Seeded, live_server, seed

from runtrack import Ledger
from runtrack.api import create_app
from runtrack.config import Settings
from runtrack.models import TERMINAL
from runtrack.store import migrate
from runtrack.store.schema import DURATION_BOUNDS, jobs, runs

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def only(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def key(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def database_truth(ledger: Ledger) -> dict[str, Any]:
    """What the metrics must say, computed from the runs table itself."""
    terminal = [s.value for s in TERMINAL]
    with ledger.engine.connect() as conn:
        finished = conn.execute(
            sa.select(
                runs.c.job_key,
                runs.c.provider,
                runs.c.status,
                runs.c.started_at,
                runs.c.finished_at,
                runs.c.items_success,
                runs.c.items_not_found,
                runs.c.items_skipped,
                runs.c.items_error,
            ).where(runs.c.status.in_(terminal))
        ).all()
        active = conn.execute(
            sa.select(runs.c.job_key, sa.func.count())
            .where(runs.c.status.in_(["pending", "running"]))
            .group_by(runs.c.job_key)
        ).all()
        last_success = conn.execute(sa.select(jobs.c.key, jobs.c.last_success_at)).all()
    truth: dict[str, Any] = {
        "runs": defaultdict(int),
        "items": defaultdict(int),
        "durations": defaultdict(list),
        "active": {row[0]: row[1] for row in active},
        # Every job, 0 for one that never succeeded (issue 18: "no success
        # for X" alerts fire for those too).
        "last_success": {k: at for k, at in last_success},
    }
    for row in finished:
        truth["runs"][(row.job_key, row.provider or "", row.status)] += 1
        for status in ("success", "not_found", "skipped", "error"):
            truth["items"][(row.job_key, status)] += getattr(row, f"items_{status}")
        if row.started_at is not None:
            seconds = (row.finished_at - row.started_at).total_seconds()
            truth["durations"][row.job_key].append(seconds)
    return truth


def test_scrape_matches_the_database(ledger: Ledger, seeded: Seeded) -> None:
    truth = database_truth(ledger)
    with live_server(create_app(ledger, Settings())) as url:
        samples = scrape(url)

    runs_total = only(samples, "runtrack_runs_total")
    assert runs_total == {
        key(job=j, provider=p, status=s): float(n) for (j, p, s), n in truth["runs"].items()
    }
    items_total = only(samples, "runtrack_items_total")
    assert items_total == {key(job=j, status=s): float(n) for (j, s), n in truth["items"].items()}
    for job, durations in truth["durations"].items():
        assert samples[("runtrack_run_duration_seconds_count", key(job=job))] == len(durations)
        total = samples[("runtrack_run_duration_seconds_sum", key(job=job))]
        assert math.isclose(total, sum(durations), abs_tol=1e-3)
        for bound in DURATION_BOUNDS:
            within = sum(1 for d in durations if d <= bound)
            le = key(job=job, le=f"{bound:.1f}")
            assert samples[("runtrack_run_duration_seconds_bucket", le)] == within
    active = only(samples, "runtrack_active_runs")
    assert {dict(labels)["job"]: v for labels, v in active.items() if v} == truth["active"]
    assert active[key(job=JOB_A)] == 0
    last = only(samples, "runtrack_job_last_success_timestamp_seconds")
    assert last == pytest.approx(
        {
            key(job=j): at.replace(tzinfo=UTC).timestamp() if at is not None else 0.0
            for j, at in truth["last_success"].items()
        }
    )
    assert samples[("runtrack_stale_runs", frozenset())] == 0
    paused = only(samples, "runtrack_provider_paused")
    assert paused == {
        key(provider="ebay"): 1.0,
        key(provider="infojobs"): 0.0,
        key(provider="sam"): 0.0,
        key(provider="amazon"): 0.0,
    }
    first_seen = only(samples, "runtrack_job_first_seen_timestamp_seconds")
    assert set(first_seen) == {key(job=j) for j in truth["last_success"]}
    assert all(value > 0 for value in first_seen.values())
    labels = {name for _, label_set in samples for name, _ in label_set}
    # Bounded label sets only, never a run id: incident kinds, health states.
    assert labels <= {"job", "provider", "status", "le", "kind", "state"}


def test_scrapes_are_cached_for_the_ttl(ledger: Ledger, seeded: Seeded) -> None:
    cached = create_app(ledger, Settings(), metrics_ttl=60)
    fresh = create_app(ledger, Settings(), metrics_ttl=0)
    with live_server(cached) as cached_url, live_server(fresh) as fresh_url:
        before = scrape(cached_url)
        ledger.finish_run(seeded.handle)
        ended = key(job=JOB_C, provider="amazon", status="success")
        assert scrape(cached_url) == before
        assert ("runtrack_runs_total", ended) not in before
        assert scrape(fresh_url)[("runtrack_runs_total", ended)] == 1


def test_reaped_runs_are_counted_and_retention_keeps_counters(db_url: str) -> None:
    with Ledger(db_url, heartbeat_interval=0.05) as crashed:
        lost = crashed.start_run("jobs:crashy", provider="p")  # its worker "dies"
    with Ledger(db_url, heartbeat_interval=0.05) as ledger:
        assert ledger.reap(stale_after=0.001) == [lost.id]
        for _ in range(3):
            with ledger.run("jobs:crashy", provider="p") as run:
                run.item("k", "success")
        app = create_app(ledger, Settings(), metrics_ttl=0)
        with live_server(app) as url:
            before = scrape(url)
            ledger.prune(ledger.now())
            after = scrape(url)
    failed = key(job="jobs:crashy", provider="p", status="failed")
    success = key(job="jobs:crashy", provider="p", status="success")
    assert before[("runtrack_runs_total", failed)] == 1
    assert before[("runtrack_runs_total", success)] == 3
    assert after == before  # prune deleted runs; counters never go down


def test_migration_backfills_the_same_tallies(ledger: Ledger, seeded: Seeded) -> None:
    ledger.finish_run(seeded.handle)
    maintained = ledger.job_tallies()
    with ledger.engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0003")
        conn.commit()
    migrate.upgrade(ledger.engine)
    backfilled = ledger.job_tallies()
    assert [(t.job, t.status, t.runs, t.items, t.duration_count) for t in backfilled] == [
        (t.job, t.status, t.runs, t.items, t.duration_count) for t in maintained
    ]
    for new, old in zip(backfilled, maintained, strict=True):
        assert math.isclose(new.duration_sum, old.duration_sum, abs_tol=0.01)


def test_a_scrape_reads_no_history(ledger: Ledger) -> None:
    """Every statement of a scrape reads the tallies, jobs, pauses, or runs
    through a status condition (an index range of the active runs)."""
    seed(ledger)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread().name != "runtrack-heartbeat":  # the seeded running run
            statements.append(" ".join(statement.split()).lower())

    sa.event.listen(ledger.engine, "before_cursor_execute", seen)
    try:
        with live_server(create_app(ledger, Settings(), metrics_ttl=0)) as url:
            scrape(url)
    finally:
        sa.event.remove(ledger.engine, "before_cursor_execute", seen)
    assert statements
    for statement in statements:
        assert "run_items" not in statement
        if " from runs" in statement:
            assert "runs.status" in statement.split(" where ", 1)[1], statement


@pytest.mark.parametrize("token", ["read-token-0123456789abcdef"])
def test_metrics_need_the_read_token_when_one_is_set(ledger: Ledger, token: str) -> None:
    app = create_app(ledger, Settings(read_token=token))
    with live_server(app) as url:
        assert httpx.get(f"{url}/metrics").status_code == 401
        authed = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert authed.status_code == 200
