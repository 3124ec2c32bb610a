"""OpenLineage run events: START at start, exactly one terminal event per run
(COMPLETE, FAIL, ABORT), valid against the spec, captured through the
client's own file transport, on every database."""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from lineage_support import EventSchema, file_listener_at, read_events

from runtrack import Ledger, RunStatus
from runtrack.lineage.listener import OpenLineageListener

Events = list[dict[str, Any]]


def by_job(events: Events) -> dict[str, list[str]]:
    """Event types per job, in the order they were written."""
    seen: dict[str, list[str]] = defaultdict(list)
    for event in events:
        seen[event["job"]["name"]].append(event["eventType"])
    return dict(seen)


def facet(event: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(event["run"]["facets"][name])


def one(events: Events, job: str, event_type: str) -> dict[str, Any]:
    [found] = [e for e in events if e["job"]["name"] == job and e["eventType"] == event_type]
    return found


def run_every_outcome(ledger: Ledger) -> None:
    with ledger.run("acme:ok", provider="acme", params={"q": "python", "pages": [1, 2]}) as run:
        run.count("offers", 3)
        time.sleep(0.25)  # several heartbeats: none of them is an event
    with ledger.run("acme:partial", provider="acme") as run:
        run.error("page 2 timed out")
    with pytest.raises(ValueError, match="boom"), ledger.run("acme:fail", provider="acme"):
        raise ValueError("boom")
    with ledger.run("acme:cancel", provider="acme") as run:
        ledger.cancel(run.id, by="ops", reason="maintenance window")
        run.count("never")
    pending = ledger.create_run("plain:pending")
    ledger.cancel(pending.id, reason="not needed")


def test_every_outcome_emits_start_and_one_terminal_event(
    ledger: Ledger,
    file_listener: OpenLineageListener,
    events_file: Path,
    event_schema: EventSchema,
) -> None:
    ledger.events.add(file_listener)
    run_every_outcome(ledger)
    assert file_listener.flush(10)
    events = read_events(events_file)

    assert by_job(events) == {
        "acme:ok": ["START", "COMPLETE"],
        "acme:partial": ["START", "COMPLETE"],
        "acme:fail": ["START", "FAIL"],
        "acme:cancel": ["START", "ABORT"],
        "plain:pending": ["ABORT"],  # cancelled before it started: no START
    }
    assert [event_schema.errors(e) for e in events] == [[] for _ in events]
    for event in events:
        record = ledger.get_run(facet(event, "runtrack_run")["runtrackId"])
        assert event["run"]["runId"] == record.uid
        assert event["job"]["namespace"] == (record.provider or "runtrack")
    stats = file_listener.stats
    assert (stats.sent, stats.failed, stats.dropped) == (len(events), 0, 0)


def test_events_carry_the_error_params_and_outcome(
    ledger: Ledger, file_listener: OpenLineageListener, events_file: Path
) -> None:
    ledger.events.add(file_listener)
    run_every_outcome(ledger)
    assert file_listener.flush(10)
    events = read_events(events_file)

    error = facet(one(events, "acme:fail", "FAIL"), "errorMessage")
    assert error["message"] == "ValueError: boom"
    assert error["programmingLanguage"] == "python"
    assert 'raise ValueError("boom")' in error["stackTrace"]
    abort = facet(one(events, "acme:cancel", "ABORT"), "errorMessage")
    assert abort["message"] == "cancelled: maintenance window"
    assert "errorMessage" not in one(events, "acme:partial", "COMPLETE")["run"]["facets"]

    done = one(events, "acme:ok", "COMPLETE")
    assert facet(done, "executionParameters")["parameters"] == [
        {"key": "q", "value": "python"},
        {"key": "pages", "value": "[1, 2]"},
    ]
    outcome = facet(done, "runtrack_run")
    assert (outcome["status"], outcome["counters"], outcome["attempt"]) == (
        "success",
        {"offers": 3},
        1,
    )
    assert facet(one(events, "acme:partial", "COMPLETE"), "runtrack_run")["status"] == "partial"
    assert "counters" not in facet(one(events, "acme:ok", "START"), "runtrack_run")


def test_a_reaped_run_ends_with_one_fail(
    ledger: Ledger, db_url: str, tmp_path: Path, event_schema: EventSchema
) -> None:
    """Both reaper paths: ``ledger.reap()``, and the stale holder reaped when
    the job's next run starts. START comes from the worker that died, FAIL
    from whoever reaped it."""
    files = [tmp_path / name for name in ("worker.jsonl", "reaper.jsonl", "next.jsonl")]
    reaper = file_listener_at(files[1])
    ledger.events.add(reaper)
    # A worker whose heartbeat never comes within the test (interval 60 s).
    with Ledger(db_url, heartbeat_interval=60, listeners=[file_listener_at(files[0])]) as dead:
        swept = dead.start_run("acme:crashed", provider="acme")
        time.sleep(0.3)
        assert ledger.reap(stale_after=0.2) == [swept.id]
        holder = dead.start_run("acme:busy", provider="acme")
        time.sleep(0.3)
    with Ledger(db_url, heartbeat_interval=0.05, stale_after=0.2) as nxt:
        nxt.events.add(file_listener_at(files[2]))  # closed, so flushed, with nxt
        with nxt.run("acme:busy", provider="acme"):
            pass  # starting reaps the stale holder first
    assert reaper.flush(10)

    events = [event for path in files for event in read_events(path)]
    assert [event_schema.errors(e) for e in events] == [[] for _ in events]
    assert by_job(events) == {
        "acme:crashed": ["START", "FAIL"],
        "acme:busy": ["START", "FAIL", "START", "COMPLETE"],
    }
    for record in (swept, holder):
        [fail] = [e for e in events if e["eventType"] == "FAIL" and e["run"]["runId"] == record.uid]
        assert facet(fail, "errorMessage")["message"].startswith("heartbeat_timeout: ")
        assert ledger.get_run(record.id).status is RunStatus.FAILED


def test_the_schema_check_rejects_what_the_spec_rejects(
    ledger: Ledger,
    file_listener: OpenLineageListener,
    events_file: Path,
    event_schema: EventSchema,
) -> None:
    """The check above can fail: broken copies of a real event are refused."""
    ledger.events.add(file_listener)
    with pytest.raises(ValueError, match="boom"), ledger.run("acme:fail", provider="acme"):
        raise ValueError("boom")
    assert file_listener.flush(10)
    fail = read_events(events_file)[-1]
    assert event_schema.errors(fail) == []

    def broken(change: Any) -> list[str]:
        event = copy.deepcopy(fail)
        change(event)
        return event_schema.errors(event)

    assert broken(lambda e: e["run"].pop("runId"))
    assert broken(lambda e: e["run"].update(runId="run-42"))
    assert broken(lambda e: e.update(eventType="DONE"))
    assert broken(lambda e: e.update(eventTime="yesterday"))
    assert broken(lambda e: e["job"].pop("namespace"))
    assert broken(lambda e: e["run"]["facets"]["errorMessage"].pop("programmingLanguage"))
    assert broken(lambda e: e["run"]["facets"]["runtrack_run"].pop("_producer"))
    assert broken(lambda e: e["run"]["facets"]["runtrack_run"].update(attempt=0))
