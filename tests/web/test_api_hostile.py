"""Hostile input in every filter, path parameter and body field: a 4xx or an
empty answer, never a 5xx, and the database is left as it was."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from web_seed import AUTH, Seeded

from runtrack import Ledger

HOSTILE = [
    "' OR '1'='1",
    "1; DROP TABLE runs; --",
    '" OR ""="',
    "1 UNION SELECT uid FROM runs",
    "%' --",
    "ñandú/北京/😀",
    "\u202eevil",
    "\x00",
    "\x1b[31m",
    "",
    " ",
    "-1",
    "-99999999999999999999",
    "0",
    "99999999999999999999999999",
    str(2**63),
    str(2**64),
    "1e308",
    "NaN",
    "../../etc/passwd",
    "a" * 5000,
    "2026-13-45T99:99:99",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-05:00",
]

QUERY_ROUTES = {
    "/api/runs": [
        "job",
        "provider",
        "status",
        "triggered_by",
        "since",
        "until",
        "limit",
        "cursor",
        "page",
    ],
    "/api/runs/recent": ["limit"],
    "/api/runs/status/failed": ["limit", "cursor"],
    "/api/runs/{run}/items": ["status", "group", "limit", "cursor"],
    "/api/jobs": ["provider"],
    f"/api/jobs/{quote('sam:discovery')}": ["limit"],
}
PATH_ROUTES = [
    ("GET", "/api/runs/{}"),
    ("GET", "/api/runs/{}/items"),
    ("GET", "/api/runs/{}/groups"),
    ("GET", "/api/runs/status/{}"),
    ("GET", "/api/jobs/{}"),
    ("POST", "/api/runs/{}/cancel"),
    ("POST", "/api/providers/{}/resume"),
]


def fingerprint(ledger: Ledger) -> tuple[Any, ...]:
    runs = ledger.list_runs(limit=1000).items
    return tuple((r.id, r.status, r.cancel_requested_at) for r in runs), len(ledger.jobs())


#: Filters that match names: no hostile value names anything seeded. (Times,
#: limits and pages may be valid: since=-1 is 1969, and selects every run.)
NAME_FILTERS = {"job", "provider", "status", "triggered_by", "group", "cursor"}


def check(response: Any, *, empty: bool = False) -> None:
    assert response.status_code < 500, (response.request.url, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    elif empty:
        assert response.json()["data"] == [], response.request.url


def test_hostile_query_parameters(client: TestClient, ledger: Ledger, seeded: Seeded) -> None:
    before = fingerprint(ledger)
    for route, names in QUERY_ROUTES.items():
        url = route.replace("{run}", str(seeded.partial))
        for name in names:
            empty = name in NAME_FILTERS
            for value in HOSTILE:
                check(client.get(url, params={name: value}), empty=empty)
            check(client.get(url, params=[(name, v) for v in HOSTILE[:6]]), empty=empty)
    assert fingerprint(ledger) == before


def test_hostile_path_parameters(client: TestClient, ledger: Ledger, seeded: Seeded) -> None:
    before = fingerprint(ledger)
    for method, template in PATH_ROUTES:
        for value in HOSTILE:
            if not value.strip("\x00 "):
                continue  # an empty segment is another route (covered by 404 tests)
            url = template.format(quote(value, safe=""))
            check(client.request(method, url, headers=AUTH))
    assert fingerprint(ledger) == before


def test_hostile_bodies(client: TestClient, ledger: Ledger, seeded: Seeded) -> None:
    before = fingerprint(ledger)
    values: list[Any] = [*HOSTILE, -1, 10**30, 1e308, None, [], {}, True, {"$ne": 1}]
    cancel = f"/api/runs/{seeded.partial}/cancel"
    for value in values:
        check(client.post(cancel, json={"reason": value}, headers=AUTH))
        for field in ("for", "until", "reason"):
            body = {"for": "1h", "reason": "r", field: value}
            check(client.post("/api/providers/p/pause", json=body, headers=AUTH))
    raw = client.post(
        "/api/providers/p/pause",
        content=b"{not json",
        headers={**AUTH, "content-type": "application/json"},
    )
    assert raw.status_code == 422
    assert fingerprint(ledger) == before


def test_injection_in_a_name_is_stored_verbatim(client: TestClient, ledger: Ledger) -> None:
    name = "x'); DELETE FROM runs; --"
    body = {"for": "1h", "reason": "' OR 1=1", "create": True}
    response = client.post(f"/api/providers/{quote(name, safe='')}/pause", json=body, headers=AUTH)
    assert response.status_code == 200
    pause = ledger.paused(name)
    assert pause is not None
    assert pause.reason == "' OR 1=1"
