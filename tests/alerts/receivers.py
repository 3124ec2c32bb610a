"""Real local receivers for the notification tests (not a test module): an
HTTP server that records every POST, an SMTP server (aiosmtpd) that records
every message, and a port that refuses connections."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Webhook:
    """``url`` answers 200 to every POST and keeps it in ``received``."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        found = [r.json for r in list(self.received)]
        return [p for p in found if event is None or p["event"] == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = 20.0) -> float:
        """Wait until ``count`` payloads of ``event`` arrived; when (monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events(event)) >= count:
                return time.monotonic()
            time.sleep(0.02)
        raise AssertionError(f"no {event!r} notification within {timeout} s: {self.events()}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_webhook() -> Webhook:
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hook.received.append(Received(dict(self.headers.items()), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook = Webhook(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hook


class Mailbox:
    """An SMTP server on a free local port; messages land in ``messages``."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    @property
    def port(self) -> int:
        return int(self.controller.port)


def free_port() -> int:
    """A port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
