"""Measure 6: the HTTP API under load, on a live uvicorn on 127.0.0.1.

The server is a separate process (``python -m bench.serving URL ANCHOR PORT
WORKERS``) running uvicorn with WORKERS server processes, as ``runtrack serve
--workers`` does, each serving ``create_app`` on the generated ledger. The
load generator is a minimal asyncio HTTP/1.1 client with a fixed number of
keep-alive connections, bounded by a request count and a time limit; its own
CPU per request is reported, since it shares the machine with the server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import httpx

from bench.results import Measure, Target
from bench.timing import summarize

__all__ = ["Server", "load", "measure_endpoint"]

RPS_MIN = 1000.0
P95_MS = 20.0
#: Server processes: one per core of the 2-core machine the targets are for.
WORKERS = 2
#: Seconds over which the load generator opens its connections (untimed).
RAMP_UP = 1.0
_URL, _ANCHOR = "BENCH_SERVE_URL", "BENCH_SERVE_ANCHOR"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """uvicorn in a child process with ``workers`` server processes (as
    ``runtrack serve --workers``), stopped on exit."""

    def __init__(self, url: str, anchor: str, workers: int = WORKERS) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTRACK_")}
        command = [sys.executable, "-m", "bench.serving", url, anchor, str(self.port), str(workers)]
        self.process = subprocess.Popen(command, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/api/runs?limit=1", timeout=2).status_code == 200:
                    # One process answered; the others started with it and
                    # are a moment behind at most.
                    time.sleep(1.0 if workers > 1 else 0.0)
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


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends GETs one at a time.

    A minimal client on asyncio streams rather than httpx: the load generator
    shares the 2 cores with the server, and httpx spends more CPU per request
    than the server's answer to a run detail. It checks what a test client
    would: every status is 200 and every body is complete (Content-Length
    bytes, JSON ending in ``}``).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base: str) -> _Connection:
        host, _, port = base.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def get(self, path: str) -> bytes:
        self.writer.write(b"GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path.encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length = _parse_head(head)
        body = await self.reader.readexactly(length)
        if status != 200 or not body.endswith(b"}"):
            raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        return body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, int]:
    """The status and Content-Length of a response head (the server answers
    with a length, never chunked, and keeps the connection open)."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lowered = name.lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"connection" and value.strip().lower() == b"close":
            raise RuntimeError("the server closed a keep-alive connection")
    if length is None:
        raise RuntimeError(f"a response without Content-Length: {head[:200]!r}")
    return status, length


async def _client(
    connection: _Connection, paths: list[str], left: list[int], until: float, out: list[float]
) -> None:
    n = 0
    while left[0] > 0 and time.monotonic() < until:
        left[0] -= 1
        path = paths[n % len(paths)]
        n += 1
        began = time.perf_counter()
        await connection.get(path)
        out.append(time.perf_counter() - began)


async def _open_under_load(base: str, paths: list[str], clients: int) -> list[_Connection]:
    """Open the connections one by one while the earlier ones keep the server
    busy (untimed): this also warms them and the server.

    With several server processes sharing the listening socket, an idle
    server accepts every connection of a burst in one go, so all 8 would land
    on one process; a busy process is slow to accept, so connections opened
    under load spread over the processes, as they do under steady traffic.
    """
    connections: list[_Connection] = []
    busy: list[asyncio.Task[None]] = []
    stop = asyncio.Event()

    async def keep_busy(connection: _Connection) -> None:
        n = 0
        while not stop.is_set():
            await connection.get(paths[n % len(paths)])
            n += 1

    try:
        for _ in range(clients):
            connections.append(await _Connection.open(base))
            busy.append(asyncio.create_task(keep_busy(connections[-1])))
            await asyncio.sleep(RAMP_UP / clients)
    finally:
        stop.set()
        await asyncio.gather(*busy)
    return connections


async def _load(
    base: str, paths: list[str], requests: int, seconds: float, clients: int
) -> tuple[list[float], float, float]:
    connections = await _open_under_load(base, paths, clients)
    try:
        latencies: list[float] = []
        left = [requests]
        cpu = time.process_time()
        began = time.perf_counter()
        until = time.monotonic() + seconds
        await asyncio.gather(*(_client(c, paths, left, until, latencies) for c in connections))
        return latencies, time.perf_counter() - began, time.process_time() - cpu
    finally:
        for connection in connections:
            await connection.close()


def load(
    base: str, paths: list[str], requests: int, seconds: float, clients: int
) -> tuple[list[float], float, float]:
    """Latencies of at most ``requests`` GETs over ``paths`` (round robin) by
    ``clients`` concurrent connections, stopping after ``seconds``; the wall
    time taken and the load generator's own CPU time."""
    return asyncio.run(_load(base, paths, requests, seconds, clients))


def measure_endpoint(
    backend: str, name: str, server: Server, paths: list[str], p: object
) -> Measure:
    requests, seconds, clients = p.api_requests, p.api_seconds, p.api_clients  # type: ignore[attr-defined]
    latencies, took, client_cpu = load(server.base, paths, requests, seconds, clients)
    rps = len(latencies) / took
    client_ms = client_cpu * 1000 / len(latencies)  # what the load generator took of the cores
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
        notes=f"{rps:,.0f} req/s; {len(latencies)} requests by {clients} connections to "
        f"{server.workers} server processes; load generator {client_ms:.2f} ms CPU/request",
        extra={
            "requests_per_second": rps,
            "requests": len(latencies),
            "connections": clients,
            "server_processes": server.workers,
            "client_cpu_ms_per_request": client_ms,
        },
    )


def app() -> Any:
    """The app of one server process (uvicorn calls it in each worker): the
    ledger named by the environment, its clock standing at the ledger's "now"."""
    import logging

    from runtrack import Ledger, ManualClock
    from runtrack.config import Settings
    from runtrack.web.app import create_app

    logging.getLogger("runtrack").setLevel(logging.ERROR)
    clock = ManualClock(datetime.fromisoformat(os.environ[_ANCHOR]))
    ledger = Ledger(os.environ[_URL], clock=clock, migrate=False)
    return create_app(ledger, Settings())


def _serve(url: str, anchor: str, port: int, workers: int) -> None:
    import uvicorn

    os.environ[_URL], os.environ[_ANCHOR] = url, anchor
    uvicorn.run(
        "bench.serving:app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
