"""Serving the web app with uvicorn: one process on a ledger, or several
processes on one socket, each opening its own ledger.

The server start lives here, next to the app, so that the CLI
(``runtrack serve``) and the demo (``runtrack demo --serve``) both call down
into it and neither imports the other.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console

from runtrack.errors import ConfigurationError

if TYPE_CHECKING:
    from runtrack.config import Settings
    from runtrack.ledger import Ledger

__all__ = ["WORKER_APP", "WORKER_LOG", "serve_app", "serve_workers", "worker_app"]

#: What each process of ``serve --workers N`` imports and calls for its app.
WORKER_APP = "runtrack.web.server:worker_app"
#: How the command's logging reaches the worker processes: "<format>:<level>".
WORKER_LOG = "RUNTRACK_SERVE_LOG"
#: uvicorn's own default: only a proxy on this machine is trusted.
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1"


def _server_options(settings: Settings, access_log: bool) -> dict[str, Any]:
    """uvicorn's options: trusted proxies, and no ``server: uvicorn`` header
    (it tells a scanner which server and version to try)."""
    return {
        # log_config=None keeps the CLI's handlers: uvicorn's lines use --log-format too.
        "log_config": None,
        "access_log": access_log,
        "server_header": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips or DEFAULT_FORWARDED_ALLOW_IPS,
    }


def serve_app(
    ledger: Ledger, settings: Settings, host: str, port: int, *, access_log: bool = True
) -> None:
    """Run the web app on ``ledger`` until interrupted (Ctrl-C, SIGTERM)."""
    uvicorn, create_app = _server()
    app = create_app(ledger, settings, checks=True)
    _announce(host, port)
    config = uvicorn.Config(app, host=host, port=port, **_server_options(settings, access_log))
    with _stop_signals_end_normally():
        uvicorn.Server(config).run()


def serve_workers(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    log: str,
    *,
    access_log: bool = True,
) -> None:
    """Run ``workers`` processes of the web app on one socket until
    interrupted; each opens its own ledger from the environment (the caller
    exports the database URL as RUNTRACK_DATABASE_URL; the proxy options are
    passed on as their RUNTRACK_* variables)."""
    uvicorn, _ = _server()
    os.environ["RUNTRACK_SECURE_COOKIES"] = "true" if settings.secure_cookies else "false"
    if settings.forwarded_allow_ips:
        os.environ["RUNTRACK_FORWARDED_ALLOW_IPS"] = settings.forwarded_allow_ips
    os.environ[WORKER_LOG] = log
    os.environ["RUNTRACK_CHECK_EVERY"] = f"{settings.check_every:g}"
    _announce(host, port)
    with _stop_signals_end_normally():
        uvicorn.run(
            WORKER_APP,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **_server_options(settings, access_log),
        )


def worker_app() -> Any:
    """The app of one process of ``serve --workers``, logging as the command
    that started it; it opens (and closes) its own ledger from the settings
    and checks expectations like a single server (each process offers)."""
    from runtrack.cli.logs import LogFormat, setup_logging

    _, create_app = _server()
    fmt, _, level = os.environ.get(WORKER_LOG, f"rich:{logging.INFO}").partition(":")
    setup_logging(LogFormat(fmt), int(level))
    return create_app(checks=True)


def _server() -> tuple[Any, Callable[..., Any]]:
    """uvicorn and ``create_app``, or what to install to have them."""
    try:
        import uvicorn

        from runtrack.web.app import create_app
    except ImportError as exc:
        raise ConfigurationError(
            f"the web server needs the 'server' extra ({exc.name} is missing): "
            "pip install 'runtrack[server]'"
        ) from None
    return uvicorn, create_app


def _announce(host: str, port: int) -> None:
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    Console(stderr=True, highlight=False).print(
        f"dashboard on http://{shown}:{port}/  API on http://{shown}:{port}/api"
    )


@contextmanager
def _stop_signals_end_normally() -> Iterator[None]:
    """uvicorn re-raises the SIGINT/SIGTERM that stopped it once it has shut
    down gracefully; for ``runtrack serve`` that is the normal end (exit 0)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
