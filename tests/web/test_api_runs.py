"""GET /api/runs and friends: every filter, both paginations, run detail, items."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from web_seed import AUTH, JOB_A, JOB_B, JOB_C, Seeded

from runtrack import Ledger


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()["data"]]


def test_list_is_newest_first_with_every_status(client: TestClient, seeded: Seeded) -> None:
    body = client.get("/api/runs").json()
    listed = [run["id"] for run in body["data"]]
    assert listed == sorted(listed, reverse=True)
    assert len(listed) == 8
    assert body["next_cursor"] is None
    statuses = {run["id"]: run["status"] for run in body["data"]}
    assert statuses[seeded.partial] == "partial"
    assert statuses[seeded.failed] == "failed"
    assert statuses[seeded.cancelled] == "cancelled"
    assert statuses[seeded.running] == "running"
    assert statuses[seeded.pending] == "pending"


FILTERS: list[tuple[dict[str, Any], Any]] = [
    ({"job": JOB_A}, lambda s: [s.failed, s.partial, *reversed(s.successes)]),
    ({"provider": "sam"}, lambda s: [s.cancelled, s.by_alice]),
    ({"status": "success"}, lambda s: [s.by_alice, *reversed(s.successes)]),
    ({"status": ["failed", "cancelled"]}, lambda s: [s.cancelled, s.failed]),
    ({"triggered_by": "alice"}, lambda s: [s.by_alice]),
    ({"job": JOB_A, "status": "partial"}, lambda s: [s.partial]),
    ({"job": "no:such:job"}, lambda s: []),
]


def test_filters(client: TestClient, seeded: Seeded) -> None:
    for query, expected in FILTERS:
        assert ids(client.get("/api/runs", params=query)) == expected(seeded), query


def test_since_and_until_bound_created_at(
    client: TestClient, seeded: Seeded, ledger: Ledger
) -> None:
    partial = ledger.get_run(seeded.partial).created_at
    since = ids(client.get("/api/runs", params={"since": partial.isoformat()}))
    assert min(since) == seeded.partial
    until = ids(client.get("/api/runs", params={"until": partial.isoformat()}))
    assert until == list(reversed(seeded.successes))
    later = (ledger.now() + timedelta(days=1)).isoformat()
    assert ids(client.get("/api/runs", params={"since": later})) == []


def test_times_are_iso_8601_not_unix_timestamps(client: TestClient, seeded: Seeded) -> None:
    for value in ("1700000000", "-5", "1.5"):
        answer = client.get("/api/runs", params={"until": value})
        assert answer.status_code == 422, value
        assert "ISO 8601" in answer.text


def test_cursor_walks_every_run_once(client: TestClient, seeded: Seeded) -> None:
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/runs", params=params).json()
        seen += [run["id"] for run in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == 8


def test_page_numbers_answer_with_totals(client: TestClient, seeded: Seeded) -> None:
    first = client.get("/api/runs", params={"page": 1, "limit": 3}).json()
    third = client.get("/api/runs", params={"page": 3, "limit": 3}).json()
    assert first["pagination"] == {
        "page": 1,
        "limit": 3,
        "total": 8,
        "total_pages": 3,
        "total_exact": True,
    }
    assert len(first["data"]) == 3
    assert len(third["data"]) == 2
    beyond = client.get("/api/runs", params={"page": 9, "limit": 3}).json()
    assert beyond["data"] == []
    filtered = client.get("/api/runs", params={"page": 1, "job": JOB_B}).json()
    assert filtered["pagination"]["total"] == 2


def test_limit_bounds_and_bad_cursor(client: TestClient, seeded: Seeded) -> None:
    huge = client.get("/api/runs", params={"limit": 1_000_000_000})
    assert huge.status_code == 422
    assert huge.headers["content-type"] == "application/problem+json"
    assert huge.json()["errors"][0]["field"] == "limit"
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422
    assert len(ids(client.get("/api/runs", params={"limit": 200}))) == 8
    bad = client.get("/api/runs", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "cursor"
    both = client.get("/api/runs", params={"page": 1, "cursor": "djE6Mw"})
    assert both.status_code == 422
    assert client.get("/api/runs", params={"status": "stuck"}).status_code == 422


def test_recent_and_status_routes(client: TestClient, seeded: Seeded) -> None:
    recent = ids(client.get("/api/runs/recent"))
    assert recent == sorted(recent, reverse=True)[:5]
    assert len(recent) == 5
    assert len(ids(client.get("/api/runs/recent", params={"limit": 2}))) == 2
    assert ids(client.get("/api/runs/status/running")) == [seeded.running]
    page = client.get("/api/runs/status/success", params={"limit": 2}).json()
    assert [r["id"] for r in page["data"]] == [seeded.by_alice, seeded.successes[1]]
    rest = client.get("/api/runs/status/success", params={"cursor": page["next_cursor"]})
    assert ids(rest) == [seeded.successes[0]]
    assert client.get("/api/runs/status/nope").status_code == 422


def test_run_detail_of_a_partial_run(client: TestClient, seeded: Seeded) -> None:
    run = client.get(f"/api/runs/{seeded.partial}").json()
    assert run["status"] == "partial"
    assert run["items"] == {"success": 0, "not_found": 1, "skipped": 1, "error": 1}
    assert run["groups"] == {"found": 0, "missing": 1}
    assert run["checkpoint"] == {"page": 7}
    assert run["window"]["start"] is not None
    assert run["duration_seconds"] >= 0
    assert run["progress"]["eta_seconds"] is None


def test_run_detail_of_a_failed_and_a_running_run(client: TestClient, seeded: Seeded) -> None:
    failed = client.get(f"/api/runs/{seeded.failed}", headers=AUTH).json()
    assert failed["error"]["type"] == "ValueError"
    assert failed["error"]["message"] == "boom"
    assert "Traceback" in failed["error"]["stack"]
    running = client.get(f"/api/runs/{seeded.running}").json()
    assert running["progress"]["done"] == 40
    assert running["progress"]["total"] == 100
    assert running["progress"]["percent"] == 40.0
    assert running["progress"]["eta_seconds"] is not None
    assert running["progress"]["eta_seconds"] >= 0
    assert running["counters"] == {"prices": 40}
    assert running["finished_at"] is None
    assert running["duration_seconds"] is None
    success = client.get(f"/api/runs/{seeded.successes[0]}").json()
    assert success["counters"] == {"offers": 10}
    assert success["params"] == {"page": 0}
    assert success["progress"]["percent"] == 100.0


def test_unknown_run_is_a_problem_404(client: TestClient, seeded: Seeded) -> None:
    missing = client.get("/api/runs/987654")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    problem = missing.json()
    assert problem["status"] == 404
    assert problem["type"].endswith("run-not-found")
    assert "987654" in problem["detail"]
    assert client.get("/api/runs/987654/items").status_code == 404
    assert client.get("/api/runs/987654/groups").status_code == 404


def test_items_with_filters_and_cursor(client: TestClient, seeded: Seeded) -> None:
    url = f"/api/runs/{seeded.partial}/items"
    every = client.get(url).json()
    assert [i["key"] for i in every["data"]] == ["offer-x", "offer-y", "offer-z"]
    assert every["data"][0]["error"] == "HTTP 500"
    assert every["next_cursor"] is None
    errors = client.get(url, params={"status": "error"}).json()["data"]
    assert [i["key"] for i in errors] == ["offer-x"]
    java = client.get(url, params={"group": "java"}).json()["data"]
    assert [i["key"] for i in java] == ["offer-y", "offer-z"]
    first = client.get(url, params={"limit": 2}).json()
    rest = client.get(url, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [i["key"] for i in first["data"] + rest["data"]] == ["offer-x", "offer-y", "offer-z"]
    assert client.get(url, params={"status": "lost"}).status_code == 422
    assert client.get(url, params={"cursor": "%%%"}).status_code == 400


def test_groups_of_a_run(client: TestClient, seeded: Seeded) -> None:
    groups = client.get(f"/api/runs/{seeded.partial}/groups").json()["data"]
    assert groups == [
        {
            "group": "java",
            "counts": {"not_found": 1, "skipped": 1},
            "found": False,
            "found_in": [],
        }
    ]
    found = client.get(f"/api/runs/{seeded.successes[0]}/groups").json()["data"]
    assert found[0]["found_in"] == ["infojobs"]


def test_job_keys_with_slashes_route_to_the_job(client: TestClient, seeded: Seeded) -> None:
    job = client.get(f"/api/jobs/{JOB_A}").json()
    assert job["key"] == JOB_A
    assert [r["id"] for r in job["recent_runs"]][:1] == [seeded.failed]
    assert client.get(f"/api/jobs/{JOB_C}").json()["active_runs"] == 1


def test_items_and_groups_alike_but_for_case_stay_apart(client: TestClient, ledger: Ledger) -> None:
    with ledger.run("x:skus") as run:
        run.item("p1", "success", group="SKU-a", source="Amazon")
        run.item("p2", "not_found", group="sku-A", source="amazon")
        run.item("p3", "success", group="SKU-a ", source="ebay")  # a trailing space
        run.item("p4", "not_found", group="skú-a", source="ebay")
    groups = client.get(f"/api/runs/{run.id}/groups").json()["data"]
    assert {g["group"]: g["found_in"] for g in groups} == {
        "SKU-a": ["Amazon"],
        "sku-A": [],
        "SKU-a ": ["ebay"],
        "skú-a": [],
    }
    url = f"/api/runs/{run.id}/items"
    for group, keys in (("SKU-a", ["p1"]), ("sku-A", ["p2"]), ("SKU-a ", ["p3"]), ("sku-a", [])):
        listed = client.get(url, params={"group": group}).json()["data"]
        assert [i["key"] for i in listed] == keys, group
    detail = client.get(f"/api/runs/{run.id}").json()
    assert detail["groups"] == {"found": 2, "missing": 2}
