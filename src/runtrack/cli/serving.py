"""``runtrack serve``, ``worker`` and ``demo``: the long-running commands."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runtrack.cli.state import State, err_console, state_of
from runtrack.errors import ConfigurationError

if TYPE_CHECKING:
    from runtrack.config import Settings
    from runtrack.ledger import Ledger

__all__ = ["load_runner", "register", "serve_app"]

Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")]
Workers = Annotated[
    int,
    typer.Option(
        min=1,
        max=64,
        help="Server processes sharing the port, each with its own database connections; "
        "up to one per CPU core (one process uses at most one core).",
    ),
]
AccessLog = Annotated[
    bool,
    typer.Option(
        "--access-log/--no-access-log",
        help="Log a line per request: ~0.4 ms of CPU each with --log-format rich, "
        "~0.01 ms with json (a run detail takes ~0.6 ms to answer).",
    ),
]

#: What each process of ``serve --workers N`` imports and calls for its app.
WORKER_APP = "runtrack.cli.serving:worker_app"
#: How the command's logging reaches the worker processes: "<format>:<level>".
_WORKER_LOG = "RUNTRACK_SERVE_LOG"


def serve(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Workers = 1,
    access_log: AccessLog = True,
) -> None:
    """Serve the HTTP API (/api) and the dashboard (/) with uvicorn."""
    state = state_of(ctx)
    if workers == 1:
        with state.ledger() as ledger:
            serve_app(ledger, state.settings(), host, port, access_log=access_log)
        return
    with state.ledger():  # migrate here once, not in every worker at the same time
        pass
    root = ctx.find_root().params
    level = logging.DEBUG if root.get("debug") else logging.INFO
    log = f"{root.get('log_format', 'rich')}:{level}"
    serve_workers(state, host, port, workers, log, access_log=access_log)


def serve_app(
    ledger: Ledger, settings: Settings, host: str, port: int, *, access_log: bool = True
) -> None:
    """Run the web app on ``ledger`` until interrupted (Ctrl-C, SIGTERM)."""
    uvicorn, create_app = _server()
    app = create_app(ledger, settings)
    _announce(host, port)
    # log_config=None keeps the CLI's handlers: uvicorn's lines use --log-format too.
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=access_log)
    with _stop_signals_end_normally():
        uvicorn.Server(config).run()


def serve_workers(
    state: State, host: str, port: int, workers: int, log: str, *, access_log: bool = True
) -> None:
    """Run ``workers`` processes of the web app on one socket until
    interrupted; each opens its own ledger from the environment, where
    ``--database-url`` is passed on as RUNTRACK_DATABASE_URL."""
    uvicorn, _ = _server()
    export_database_url(state)
    os.environ[_WORKER_LOG] = log
    _announce(host, port)
    with _stop_signals_end_normally():
        uvicorn.run(
            WORKER_APP,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=access_log,
        )


def worker_app() -> Any:
    """The app of one process of ``serve --workers``, logging as the command
    that started it; it opens (and closes) its own ledger from the settings."""
    from runtrack.cli.logs import LogFormat, setup_logging

    _, create_app = _server()
    fmt, _, level = os.environ.get(_WORKER_LOG, f"rich:{logging.INFO}").partition(":")
    setup_logging(LogFormat(fmt), int(level))
    return create_app()


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
    err_console().print(f"dashboard on http://{shown}:{port}/  API on http://{shown}:{port}/api")


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


def worker(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:RUNNER",
            help="Where your Runner is, e.g. myjobs.worker:runner (run from your project).",
        ),
    ],
) -> None:
    """Run your Runner's jobs until SIGTERM or Ctrl-C (a graceful stop).

    With --database-url, your module sees it as RUNTRACK_DATABASE_URL, so
    Ledger() and Ledger.from_settings() in it pick it up."""
    export_database_url(state_of(ctx))
    runner = load_runner(target)
    runner.run_forever()


def export_database_url(state: State) -> None:
    if state.database_url:
        os.environ["RUNTRACK_DATABASE_URL"] = state.database_url


def load_runner(target: str) -> Any:
    """Import ``module:attribute`` (the current directory is importable, as
    with ``python -m``) and check it looks like a Runner."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise typer.BadParameter(
            f"{target!r} is not MODULE:RUNNER (e.g. myjobs.worker:runner)", param_hint="TARGET"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise typer.BadParameter(
                f"no module named {exc.name!r} (run from your project's directory)",
                param_hint="MODULE:RUNNER",
            ) from None
        raise
    runner: Any = module
    for part in attribute.split("."):
        runner = getattr(runner, part, None)
        if runner is None:
            raise typer.BadParameter(
                f"module {module_name!r} has no attribute {attribute!r}",
                param_hint="MODULE:RUNNER",
            )
    if not callable(getattr(runner, "run_forever", None)):
        raise typer.BadParameter(
            f"{target} is a {type(runner).__name__}, not a Runner (it has no run_forever())",
            param_hint="MODULE:RUNNER",
        )
    return runner


def demo(
    ctx: typer.Context,
    duration: Annotated[
        float, typer.Option(min=1, max=3600, help="Seconds the simulated jobs run.")
    ] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated providers.")] = 7,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the dashboard afterwards.")
    ] = True,
    host: Host = "127.0.0.1",
    port: Port = 8000,
) -> None:
    """Run simulated ingestion jobs, print what happened, serve the dashboard.

    Simulated providers (no network) exercise every outcome: success,
    partial, a rate-limited provider that gets paused, a worker process that
    dies and is reaped, a cancelled run."""
    from runtrack.demo import run_demo

    state = state_of(ctx)
    run_demo(
        state.settings(),
        duration=duration,
        seed=seed,
        serve=(host, port) if serve_after else None,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("demo")(demo)
