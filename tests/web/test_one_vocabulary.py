"""One JSON vocabulary: the CLI's ``--json`` (a real process, piped) and the
API (real HTTP) give the same keys and values for the same records, every
name in the OpenAPI document is snake_case, and the API takes the CLI's
filter values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import httpx
from fastapi.testclient import TestClient
from web_seed import AUTH, JOB_A, TOKEN, Seeded, live_server

from runtrack import Ledger, RunStatus
from runtrack.api import create_app
from runtrack.config import Settings


def _cli(db_url: str, *args: str) -> Any:
    env = dict(os.environ, RUNTRACK_DATABASE_URL=db_url)
    done = subprocess.run(
        [sys.executable, "-m", "runtrack", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_json_and_api_json_are_the_same_records(
    ledger: Ledger, db_url: str, seeded: Seeded
) -> None:
    # A running run's ETA moves with the clock between two calls: end it first.
    ledger.finish_run(seeded.handle, RunStatus.SUCCESS)
    ledger.skip_tick(JOB_A, reason="busy: 1 of 1 slot held by run 1")  # issue 21: a timestamp
    app = create_app(ledger, Settings(api_token=TOKEN).validated())
    with live_server(app) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        pairs = {
            "runs": (["runs", "--limit", "50"], "/api/runs?limit=50"),
            "jobs": (["jobs"], "/api/jobs"),
            "providers": (["providers"], "/api/providers"),
            "failed run": (["show", str(seeded.failed)], f"/api/runs/{seeded.failed}"),
            "partial run": (["show", str(seeded.partial)], f"/api/runs/{seeded.partial}"),
            "items": (["items", str(seeded.partial)], f"/api/runs/{seeded.partial}/items"),
            "groups": (["groups", str(seeded.partial)], f"/api/runs/{seeded.partial}/groups"),
        }
        for name, (args, path) in pairs.items():
            answer = http.get(path)
            assert answer.status_code == 200, (name, answer.text)
            assert _cli(db_url, *args) == answer.json(), name
        runs = http.get("/api/runs?limit=50").json()["data"]
    assert len(runs) == 8 and all("error" in r and "progress" in r for r in runs)
    failed = next(r for r in runs if r["id"] == seeded.failed)
    assert failed["error"] == {"type": "ValueError", "message": "boom"}
    providers = _cli(db_url, "providers")["data"]
    assert {p["name"] for p in providers} == {"infojobs", "sam", "amazon", "ebay"}
    ebay = next(p for p in providers if p["name"] == "ebay")
    assert ebay["paused"]["reason"] == "429 from the API"
    job = _cli(db_url, "jobs")["data"][0]
    assert {"next_due_at", "last_run", "last_success", "paused", "ticks_skipped"} <= set(job)
    assert set(job["last_run"]) == set(job["last_success"]) == {"run_id", "status", "finished_at"}


CAMEL = re.compile(r"[a-z][A-Z]")


def _names(schema: Any, components: dict[str, Any], seen: set[str]) -> list[str]:
    """Every property name reachable from ``schema``."""
    if isinstance(schema, list):
        return [n for s in schema for n in _names(s, components, seen)]
    if not isinstance(schema, dict):
        return []
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return _names(components[name], components, seen)
    found = list(schema.get("properties", {}))
    for key, value in schema.items():
        if key != "examples":
            found += _names(value, components, seen)
    return found


def test_no_camel_case_in_any_api_response(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    components = document["components"]["schemas"]
    names: list[str] = []
    responses = 0
    for path in document["paths"].values():
        for operation in path.values():
            for response in operation.get("responses", {}).values():
                for content in response.get("content", {}).values():
                    responses += 1
                    names += _names(content.get("schema", {}), components, set())
    assert responses > 20 and "total_pages" in names and "next_due_at" in names
    assert [n for n in names if CAMEL.search(n)] == []


def test_the_api_takes_the_clis_filter_values(client: TestClient, seeded: Seeded) -> None:
    recent = client.get("/api/runs", params={"since": "24h", "limit": 50})
    assert recent.status_code == 200, recent.text
    assert len(recent.json()["data"]) == 8
    none = client.get("/api/runs", params={"until": "24h"})
    assert none.status_code == 200 and none.json()["data"] == []
    bare = client.get("/api/runs", params={"since": "24"})
    assert bare.status_code == 422 and "has no unit" in bare.text


def test_an_unknown_query_parameter_is_a_400_naming_the_allowed_ones(
    client: TestClient, seeded: Seeded
) -> None:
    answer = client.get("/api/runs", params={"triggeredBy": "alice"})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "triggeredBy" in answer.json()["detail"] and "triggered_by" in answer.json()["detail"]
    assert client.get("/api/jobs", params={"provder": "sam"}).status_code == 400
    assert client.get("/api/runs", params={"triggered_by": "alice"}).status_code == 200


def test_the_pause_duration_is_for_as_in_the_cli_and_the_library(
    client: TestClient, seeded: Seeded, ledger: Ledger
) -> None:
    paused = client.post(
        "/api/providers/sam/pause", json={"for": "15m", "reason": "429"}, headers=AUTH
    )
    assert paused.status_code == 200, paused.text
    assert ledger.paused("sam") is not None
    old = client.post(
        "/api/providers/sam/pause", json={"duration": "15m", "reason": "429"}, headers=AUTH
    )
    assert old.status_code == 422 and "duration" in old.text
