"""Helpers of the HTTP tests: a seeded history, clients, a live server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtrack import Ledger, Run
from runtrack.api import create_app
from runtrack.config import Settings

TOKEN = "api-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

JOB_A = "infojobs:search:python/madrid"  # ':' and '/' in a key, on purpose
JOB_B = "sam:discovery"
JOB_C = "amazon:prices"
JOB_D = "ebay:lookup"


@dataclass(frozen=True)
class Seeded:
    """What :func:`seed` recorded, by name."""

    successes: list[int]
    partial: int
    failed: int
    by_alice: int
    cancelled: int
    running: int
    pending: int
    handle: Run


def seed(ledger: Ledger) -> Seeded:
    """A small history covering every status, items, groups, a pause."""
    successes = []
    for n in range(2):
        with ledger.run(JOB_A, provider="infojobs", params={"page": n}) as run:
            run.count("offers", 10 + n)
            run.set_total(4)
            run.advance(4)
            run.item(f"offer-{n}", "success", group="python", source="infojobs")
        successes.append(run.id)
    with ledger.run(JOB_A, provider="infojobs") as run:
        run.item("offer-x", "error", error="HTTP 500")
        run.item("offer-y", "not_found", group="java", source="infojobs")
        run.item("offer-z", "skipped", group="java", source="infojobs")
        run.save_checkpoint({"page": 7})
    partial = run.id
    with pytest.raises(ValueError, match="boom"), ledger.run(JOB_A, provider="infojobs") as run:
        raise ValueError("boom")
    failed = run.id
    with ledger.run(JOB_B, provider="sam", triggered_by="alice") as run:
        run.count("notices", 3)
    by_alice = run.id
    cancelled = ledger.create_run(JOB_B, provider="sam")
    ledger.cancel(cancelled.id, reason="not today")
    handle = ledger.start_run(JOB_C, provider="amazon")
    handle.set_total(100)
    handle.advance(40)
    handle.count("prices", 40)
    ledger.heartbeat_now()
    pending = ledger.create_run(JOB_D, provider="ebay")
    ledger.pause("ebay", for_="1h", reason="429 from the API")
    return Seeded(successes, partial, failed, by_alice, cancelled.id, handle.id, pending.id, handle)


def make_client(ledger: Ledger, **settings: str) -> TestClient:
    return TestClient(create_app(ledger, Settings(**settings).validated()))


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
