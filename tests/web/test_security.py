"""The security model of the HTTP API and the dashboard, attacked from outside:
the read gate on every route and method, the token check before the body,
the body cap, crafted cursors, the sign-in page's ``next``, revocable
sign-out, the documents behind the gate, and the overview's cache."""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from starlette.routing import BaseRoute, Mount
from web_seed import AUTH, READ_TOKEN, TOKEN, live_server

from runtrack import Ledger
from runtrack.api import create_app
from runtrack.config import Settings
from runtrack.errors import DatabaseUnavailable
from runtrack.web.guard import MAX_BODY

MARKER = "zq-marker-5591"
READ_AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
UNKNOWN_RUN = 987654321


def seed_markers(ledger: Ledger) -> dict[str, Any]:
    """A run and a paused provider whose stored text carries :data:`MARKER`."""
    job = "marked:job"  # names appear in URLs (echoed in problems): the marker is in data
    with (
        pytest.raises(ValueError, match="failed with"),
        ledger.run(job, provider="markedp", params={"q": MARKER}) as run,
    ):
        run.item(f"item-{MARKER}", "error", group=f"g-{MARKER}", error=f"item {MARKER}")
        run.save_checkpoint({"page": MARKER})
        raise ValueError(f"failed with {MARKER}")
    running = ledger.start_run(job, provider="markedp", params={"q": MARKER})
    ledger.heartbeat_now()
    ledger.pause("markedp", for_="1h", reason=f"paused: {MARKER}")
    return {"run": run.id, "running": running, "job": job, "provider": "markedp"}


def unclocked(page: str) -> str:
    """A page without its render time: two calls may straddle a second."""
    return re.sub(r"Page rendered at [^(]*\(", "Page rendered at (", page)


def client(ledger: Ledger, **settings: Any) -> TestClient:
    return TestClient(create_app(ledger, Settings(**settings).validated(), overview_ttl=0))


def flat_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """``app.routes`` with included routers expanded (FastAPI keeps an
    included router as one entry that holds the original router)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from flat_routes(inner.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
        else:
            yield prefix, route


def paths(app: FastAPI, marked: dict[str, Any], run_id: int) -> Iterator[tuple[str, set[str]]]:
    """Every route of the app as a concrete path, with the methods it declares."""
    fill = {
        "{run_id}": str(run_id),
        "{key:path}": quote(marked["job"]),
        "{name:path}": marked["provider"],
        "{status}": "failed",
        "{entry_id}": "1",
        "{backfill_id}": "1",  # issue 17
        "{action}": "resume",
    }
    for prefix, route in flat_routes(app.routes):
        if isinstance(route, Mount):
            yield f"{route.path}/dashboard.css", {"GET"}
            continue
        path: str = prefix + route.path  # type: ignore[attr-defined]
        for pattern, value in fill.items():
            path = path.replace(pattern, value)
        assert "{" not in path, path
        yield path, set(getattr(route, "methods", None) or {"GET"})


def call(web: TestClient, method: str, path: str, **options: Any) -> httpx.Response:
    body = {"reason": "x", "for": "1h"} if method in ("POST", "PUT", "PATCH") else None
    return web.request(method, path, json=body, follow_redirects=False, **options)


def test_every_route_and_method_without_credentials_shows_nothing(ledger: Ledger) -> None:
    marked = seed_markers(ledger)
    web = client(ledger, api_token=TOKEN, read_token=READ_TOKEN)
    seen = 0
    for path, declared in paths(web.app, marked, marked["run"]):  # type: ignore[arg-type]
        for method in METHODS:
            response = call(web, method, path)
            seen += 1
            assert MARKER not in response.text, (method, path, response.status_code)
            assert READ_TOKEN not in response.text and TOKEN not in response.text
            open_path = path in ("/api/health", "/session", "/session/end") or path.startswith(
                ("/static/", "/docs/assets/")
            )
            if not open_path:
                assert response.status_code in (401, 403), (method, path, response.status_code)
            if method in declared and not open_path:
                # An unknown id answers exactly like a known one: no enumeration.
                unknown = path.replace(str(marked["run"]), str(UNKNOWN_RUN))
                other = call(web, method, unknown)
                assert other.status_code == response.status_code, (method, path)
                assert unclocked(other.text.replace(str(UNKNOWN_RUN), str(marked["run"]))) == (
                    unclocked(response.text)
                )
    assert seen >= len(METHODS) * 25
    # The data is there for whoever holds a token.
    assert MARKER in web.get(f"/api/runs/{marked['run']}", headers=READ_AUTH).text
    ledger.finish_run(marked["running"])


def test_refused_writes_show_nothing_when_reads_are_open(ledger: Ledger) -> None:
    marked = seed_markers(ledger)
    for settings in ({"api_token": TOKEN}, {}):
        web = client(ledger, **settings)
        for path, declared in paths(web.app, marked, marked["running"].id):  # type: ignore[arg-type]
            for method in set(METHODS) - {"GET", "HEAD"}:
                response = call(web, method, path)
                assert MARKER not in response.text, (settings, method, path)
                if method == "POST" and "POST" in declared and not path.startswith("/session"):
                    assert response.status_code in (401, 403), (method, path)
                    unknown = call(web, method, path.replace(str(marked["running"].id), "77777"))
                    assert unknown.status_code == response.status_code, path
    assert ledger.get_run(marked["running"].id).cancel_requested_at is None
    assert ledger.paused("markedp") is not None
    ledger.finish_run(marked["running"])


def test_the_token_is_checked_before_the_body_is_read(ledger: Ledger) -> None:
    for settings in ({"api_token": TOKEN}, {"api_token": TOKEN, "read_token": READ_TOKEN}):
        web = client(ledger, **settings)
        malformed = web.post(
            "/api/runs/1/cancel", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 401, malformed.text  # was 422 "JSON decode error"
        assert "JSON" not in malformed.text
        huge = web.post("/api/runs/1/cancel", content=b"x" * (5 * 1024 * 1024))
        assert huge.status_code == 401
    with live_server(create_app(ledger, Settings(api_token=TOKEN))) as url:
        # A declared 5 MB body that never comes: the 401 must not wait for it.
        host, port = urlsplit(url).netloc.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"POST /api/runs/1/cancel HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{"
            )
            head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 401"), head[:100]


def test_bodies_are_capped_at_64_kib(ledger: Ledger) -> None:
    run = ledger.create_run("cap:job", provider="cap")
    with live_server(create_app(ledger, Settings(api_token=TOKEN))) as url:
        big = {"reason": "r" * (MAX_BODY + 1)}
        declared = httpx.post(f"{url}/api/runs/{run.id}/cancel", json=big, headers=AUTH)
        assert declared.status_code == 413
        assert declared.headers["content-type"] == "application/problem+json"
        assert declared.json()["type"] == "urn:runtrack:problem:body-too-large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
            yield b'{"reason": "'
            for _ in range(20):
                yield b"r" * 8192
            yield b'"}'

        chunked = httpx.post(
            f"{url}/api/runs/{run.id}/cancel",
            content=chunks(),
            headers={**AUTH, "content-type": "application/json"},
        )
        assert chunked.status_code == 413, chunked.text
        assert ledger.get_run(run.id).status == "pending"  # nothing was done

        def small() -> Iterator[bytes]:
            yield b'{"reason": '
            yield b'"fits"}'

        fits = httpx.post(
            f"{url}/api/runs/{run.id}/cancel",
            content=small(),
            headers={**AUTH, "content-type": "application/json"},
        )
        assert fits.status_code == 200, fits.text
        assert ledger.get_run(run.id).cancel_reason == "fits"
        dashboard = httpx.post(f"{url}/session", content=b"token=" + b"x" * (MAX_BODY + 10))
        assert dashboard.status_code == 413


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


CRAFTED = [
    cursor_of("v1:" + "9" * 30),
    cursor_of(f"v1:{2**63}"),
    cursor_of(f"v1:{2**64 + 5}"),
    cursor_of("v1:" + "9" * 5000)[:200],
    cursor_of("v1:-5"),
    cursor_of("v1:\u0662\u0663"),  # Arabic-Indic digits: int() reads them
    cursor_of("v1: 12"),
    "A" * 5000,
]


def test_crafted_cursors_are_400_never_500(ledger: Ledger) -> None:
    marked = seed_markers(ledger)
    web = client(ledger, api_token=TOKEN)
    run_id = marked["run"]
    for cursor in CRAFTED:
        for path in ("/api/runs", f"/api/runs/{run_id}/items", "/api/runs/status/failed"):
            answer = web.get(path, params={"cursor": cursor})
            assert answer.status_code in (400, 422), (path, cursor[:40], answer.text[:300])
        page = web.get("/runs", params={"cursor": cursor})
        assert page.status_code == 400 and "Filter not applied" in page.text, cursor[:40]
        items = web.get(f"/runs/{run_id}", params={"items": cursor})
        assert items.status_code == 400, (cursor[:40], items.text[:300])
    for number in ("\u00b2", "9" * 5000, "0", str(2**63)):
        assert web.get(f"/runs/{number}").status_code == 404
        assert web.get("/runs", params={"page": number, "limit": number}).status_code == 200
    ledger.finish_run(marked["running"])


def test_sign_in_next_never_leaves_the_site(ledger: Ledger) -> None:
    web = client(ledger, api_token=TOKEN)
    for target in ("/\t/evil.example/x", "/\\evil.example", "//evil.example", "https://e.example"):
        html = web.get("/session", params={"next": target}).text
        back = re.search(r'<a class="button" href="([^"]*)">Back</a>', html)
        assert back is not None and back.group(1) == "/", (target, back)
        assert 'name="next" value="/"' in html
        signed = web.post("/session", data={"token": TOKEN, "next": target}, follow_redirects=False)
        assert signed.headers["location"] == "/"
    kept = web.get("/session", params={"next": "/runs?status=failed"}).text
    assert 'href="/runs?status=failed">Back' in kept


def signed_in_cookie(web: TestClient, token: str) -> tuple[str, str]:
    signed = web.post("/session", data={"token": token, "next": "/"}, follow_redirects=False)
    assert signed.status_code == 303
    name, _, value = signed.headers["set-cookie"].split(";")[0].partition("=")
    return name, value


def test_sign_out_revokes_the_cookie_on_every_server_process(ledger: Ledger, db_url: str) -> None:
    running = ledger.start_run("revoke:job", provider="p")
    one = client(ledger, api_token=TOKEN, read_token=READ_TOKEN)
    with Ledger(db_url, migrate=False) as elsewhere:  # another process's ledger
        two = client(elsewhere, api_token=TOKEN, read_token=READ_TOKEN)
        name, value = signed_in_cookie(one, TOKEN)
        stolen = {"cookie": f"{name}={value}"}
        assert two.get("/runs", headers=stolen).status_code == 200
        assert two.get("/docs", headers=stolen).status_code == 200
        assert one.post("/session/end", follow_redirects=False).status_code == 303
        for web in (one, two):
            assert web.get("/runs", headers=stolen).status_code == 401
            refused = web.post(f"/runs/{running.id}/cancel", headers=stolen)
            assert refused.status_code == 401
        assert ledger.get_run(running.id).cancel_requested_at is None
        # Another sign-in is a new session, unaffected.
        name, value = signed_in_cookie(two, READ_TOKEN)
        assert one.get("/runs", headers={"cookie": f"{name}={value}"}).status_code == 200
    ledger.finish_run(running)


def test_documents_need_the_read_token(ledger: Ledger) -> None:
    gated = client(ledger, api_token=TOKEN, read_token=READ_TOKEN)
    for path in ("/openapi.json", "/docs", "/metrics"):
        refused = gated.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["content-type"] == "application/problem+json"
        assert gated.get(path, headers=READ_AUTH).status_code == 200, path
    open_reads = client(ledger)
    for path in ("/openapi.json", "/docs", "/metrics"):
        assert open_reads.get(path).status_code == 200, path


def test_every_response_says_nosniff(ledger: Ledger) -> None:
    web = client(ledger, api_token=TOKEN, read_token=READ_TOKEN)
    for path in ("/api/runs", "/api/health", "/", "/static/dashboard.css", "/nothing"):
        for headers in ({}, READ_AUTH):
            assert web.get(path, headers=headers).headers["x-content-type-options"] == "nosniff"


def count_statements(ledger: Ledger) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(ledger.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(ledger.engine, "before_cursor_execute", record)


@pytest.fixture
def statements(ledger: Ledger) -> Iterator[list[str]]:
    yield from count_statements(ledger)


def test_anonymous_overview_is_cached_and_gated_before_the_database(
    ledger: Ledger, statements: list[str]
) -> None:
    for n in range(5):
        with ledger.run(f"cached:{n}", provider="p"):
            pass
    ledger.now()  # the clock is calibrated: it is not what this test counts
    web = TestClient(create_app(ledger, Settings(api_token=TOKEN), overview_ttl=60))
    statements.clear()
    assert web.get("/").status_code == 200
    assert statements, "the first visit reads the ledger"
    statements.clear()
    for _ in range(5):
        assert "cached:4" in web.get("/").text
    assert statements == []  # served from the cache
    name, value = signed_in_cookie(web, TOKEN)
    statements.clear()
    web.get("/", headers={"cookie": f"{name}={value}"})
    assert any("jobs" in s for s in statements), "a signed-in operator sees fresh data"

    gated = TestClient(create_app(ledger, Settings(read_token=READ_TOKEN), overview_ttl=60))
    statements.clear()
    for path in ("/", "/runs", "/api/runs", "/metrics", "/providers"):
        assert gated.get(path).status_code == 401
    assert statements == []  # refused before any query


def test_a_database_outage_during_the_session_check_is_a_503(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = client(ledger, api_token=TOKEN, read_token=READ_TOKEN)
    name, value = signed_in_cookie(web, READ_TOKEN)

    def unavailable(nonce: str) -> bool:
        raise DatabaseUnavailable("database error (OperationalError): host=db.internal")

    monkeypatch.setattr(ledger, "session_revoked", unavailable)
    answer = web.get("/runs", headers={"cookie": f"{name}={value}"})
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert "db.internal" not in answer.text
