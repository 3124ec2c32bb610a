"""create_app: the ledger it opens itself, the OpenAPI document, framework
errors, how many ledger calls run at once."""

from __future__ import annotations

import asyncio

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import event

from runtrack import Ledger
from runtrack.api import create_app
from runtrack.config import Settings


def test_without_a_ledger_the_app_opens_and_closes_its_own(db_url: str) -> None:
    app = create_app(settings=Settings(database_url=db_url))
    with TestClient(app) as client:
        ledger = app.state.ledger
        assert isinstance(ledger, Ledger)
        with ledger.run("jobs:via-settings"):
            pass
        runs = client.get("/api/runs").json()["data"]
        assert [r["job"] for r in runs] == ["jobs:via-settings"]
    assert ledger._heartbeat._thread is None  # closed at shutdown: its heartbeat stopped


def test_openapi_declares_every_response(ledger: Ledger) -> None:
    schema = TestClient(create_app(ledger, Settings())).get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert "Problem" in components
    assert "HTTPValidationError" not in components
    operations = [(p, m, op) for p, ops in schema["paths"].items() for m, op in ops.items()]
    # 13, the carried listing and forget, incidents (issue 18), workers, trigger
    # and rerun, the five backfill routes (issue 17)
    assert len(operations) == 24
    for path, method, op in operations:
        # 202: the run or the backfill is queued
        queued = path.endswith(("/trigger", "/rerun")) or (path, method) == (
            "/api/jobs/{key}/backfills",
            "post",
        )
        ok = op["responses"]["202" if queued else "200"]["content"]["application/json"]["schema"]
        assert ok, (path, method)
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"], (path, code)
        if method == "post":
            assert {"400", "401", "403", "422"} <= set(op["responses"]), path
            assert op["security"] == [{"HTTPBearer": []}]
        elif path != "/api/health":
            assert op["security"] == [{}, {"HTTPBearer": []}]  # reads are open by default
    limit = next(
        p for p in schema["paths"]["/api/runs"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == 200


def test_reads_require_the_token_in_openapi_when_a_read_token_is_set(ledger: Ledger) -> None:
    token = "read-token-0123456789abcdef"
    app = create_app(ledger, Settings(read_token=token))
    assert TestClient(app).get("/openapi.json").status_code == 401  # the document is read-gated
    auth = {"Authorization": f"Bearer {token}"}
    schema = TestClient(app).get("/openapi.json", headers=auth).json()
    assert schema["paths"]["/api/runs"]["get"]["security"] == [{"HTTPBearer": []}]


def test_framework_errors_are_problems(client: TestClient) -> None:
    unknown = client.get("/api/nothing-here")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no route matches /api/nothing-here",
        "instance": "/api/nothing-here",
    }
    wrong_method = client.delete("/api/runs")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["title"] == "Method Not Allowed"
    assert "GET" in wrong_method.headers["allow"]
    invalid = client.get("/api/runs", params={"limit": "many"})
    assert invalid.json()["errors"] == [
        {
            "field": "limit",
            "location": "query",
            "detail": "Input should be a valid integer, unable to parse string as an integer",
        }
    ]


def test_a_burst_of_requests_opens_no_connections_past_the_pool(ledger: Ledger) -> None:
    """Requests wait for a pooled connection instead of each opening one past
    the pool (and closing it again: on PostgreSQL, a server process each)."""
    run = ledger.create_run("jobs:burst")
    app = create_app(ledger, Settings())
    opened: list[object] = []
    event.listen(ledger.engine, "connect", lambda *_: opened.append(_))

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = await asyncio.gather(*(client.get(f"/api/runs/{run.id}") for _ in range(40)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(burst()) == [200] * 40
    assert len(opened) <= ledger.engine.pool.size()  # type: ignore[attr-defined]
