"""A TCP proxy in front of a shared database server that a test can cut.

The shared PostgreSQL and MariaDB servers are never stopped (other test
sessions use them). A ledger pointed at this proxy sees what an outage looks
like from a client: ``cut()`` resets every open connection and refuses new
ones (accepted, then reset at once) until ``restore()``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

import sqlalchemy as sa

# SO_LINGER with a zero timeout: close() sends RST, as a crashed server would.
_RESET = struct.pack("ii", 1, 0)


class FaultProxy:
    """Forwards 127.0.0.1:<port> to ``upstream`` until told to cut."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._down = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._blip_on: bytes | None = None
        #: Connections refused while cut, and outages so far.
        self.refused = 0
        self.outages = 0
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    @classmethod
    def for_url(cls, url: str) -> FaultProxy:
        parsed = sa.make_url(url)
        return cls(
            parsed.host or "127.0.0.1", parsed.port or _DEFAULT_PORTS[parsed.get_backend_name()]
        )

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parsed = sa.make_url(url).set(host="127.0.0.1", port=self.port)
        return parsed.render_as_string(hide_password=False)

    @property
    def is_down(self) -> bool:
        return self._down.is_set()

    def cut(self) -> None:
        """The database "goes away": open connections reset, new ones refused."""
        self._down.set()
        self.outages += 1
        self._reset_all()

    def _reset_all(self) -> None:
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            _reset(sock)

    def restore(self) -> None:
        self._down.clear()

    def blip_on(self, answer: bytes) -> None:
        """Cut every connection the moment the server sends ``answer`` (once),
        dropping it, and come back at once: the statement ran, the client
        never heard so (a commit whose answer is lost)."""
        self._blip_on = answer

    def close(self) -> None:
        self._closed.set()
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()

    # -- forwarding --------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                self.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._sockets.update((client, server))
            for src, dst in ((client, server), (server, client)):
                answers = src is server
                threading.Thread(target=self._pump, args=(src, dst, answers), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while chunk := src.recv(65536):
                blip = self._blip_on
                if answers and blip is not None and blip in chunk:
                    self._blip_on = None
                    self.outages += 1
                    self._reset_all()  # new connections are accepted all along
                    return
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._sockets.discard(src)
            with contextlib.suppress(OSError):
                src.close()  # each socket is the source of exactly one pump


_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
