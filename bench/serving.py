"""Measure 6: the HTTP API under load, on a live uvicorn on 127.0.0.1.

The server is a separate process (``python -m bench.serving URL ANCHOR
PORT``) serving ``create_app`` on a generated ledger; the load generator is
an asyncio client with a fixed number of keep-alive connections, bounded by
a request count and a time limit.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import datetime

import httpx

from bench.results import Measure, Target
from bench.timing import summarize

__all__ = ["Server", "load", "measure_endpoint"]

RPS_MIN = 1000.0
P95_MS = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """uvicorn in a child process, stopped on exit."""

    def __init__(self, url: str, anchor: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTRACK_")}
        command = [sys.executable, "-m", "bench.serving", url, anchor, str(self.port)]
        self.process = subprocess.Popen(command, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/api/runs?limit=1", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError("the API server did not start within 30 s")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _client(
    client: httpx.AsyncClient, paths: list[str], left: list[int], until: float, out: list[float]
) -> None:
    n = 0
    while left[0] > 0 and time.monotonic() < until:
        left[0] -= 1
        path = paths[n % len(paths)]
        n += 1
        began = time.perf_counter()
        response = await client.get(path)
        out.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:200]}")


async def _load(
    base: str, paths: list[str], requests: int, seconds: float, clients: int
) -> tuple[list[float], float]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        for path in paths[:clients]:  # open the connections, warm the server
            await client.get(path)
        latencies: list[float] = []
        left = [requests]
        began = time.perf_counter()
        until = time.monotonic() + seconds
        await asyncio.gather(
            *(_client(client, paths, left, until, latencies) for _ in range(clients))
        )
        return latencies, time.perf_counter() - began


def load(
    base: str, paths: list[str], requests: int, seconds: float, clients: int
) -> tuple[list[float], float]:
    """Latencies of at most ``requests`` GETs over ``paths`` (round robin) by
    ``clients`` concurrent connections, stopping after ``seconds``."""
    return asyncio.run(_load(base, paths, requests, seconds, clients))


def measure_endpoint(
    backend: str, name: str, server: Server, paths: list[str], p: object
) -> Measure:
    requests, seconds, clients = p.api_requests, p.api_seconds, p.api_clients  # type: ignore[attr-defined]
    latencies, took = load(server.base, paths, requests, seconds, clients)
    rps = len(latencies) / took
    ms = summarize([t * 1000 for t in latencies])
    label = "SQLite" if backend == "sqlite" else "PostgreSQL"
    return Measure(
        key=f"api.{backend}.{name}",
        title=f"GET {name}, {label}",
        unit="ms",
        stats=ms,
        target=Target(
            f">= {RPS_MIN:,.0f} req/s, p95 <= {P95_MS:g} ms",
            (
                (f">= {RPS_MIN:,.0f} req/s", rps >= RPS_MIN),
                (f"p95 <= {P95_MS:g} ms", ms.p95 <= P95_MS),
            ),
        ),
        notes=f"{rps:,.0f} req/s; {len(latencies)} requests by {clients} connections",
        extra={"requests_per_second": rps, "requests": len(latencies), "connections": clients},
    )


def _serve(url: str, anchor: str, port: int) -> None:
    import logging

    import uvicorn

    from runtrack import Ledger, ManualClock
    from runtrack.config import Settings
    from runtrack.web.app import create_app

    logging.getLogger("runtrack").setLevel(logging.ERROR)
    clock = ManualClock(datetime.fromisoformat(anchor))
    ledger = Ledger(url, clock=clock, migrate=False)
    app = create_app(ledger, Settings())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
