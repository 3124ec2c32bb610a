"""``runtrack serve``, ``worker`` and ``demo``: the long-running commands."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Annotated, Any

import typer

from runtrack.cli.state import State, state_of
from runtrack.web.server import serve_app, serve_workers

__all__ = ["load_runner", "register"]

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

ForwardedAllowIps = Annotated[
    str | None,
    typer.Option(
        "--forwarded-allow-ips",
        metavar="ADDRESSES",
        help="Comma-separated addresses (or CIDR networks, or '*') of the reverse proxies "
        "whose X-Forwarded-Proto and X-Forwarded-For are trusted "
        "[env: RUNTRACK_FORWARDED_ALLOW_IPS; default: 127.0.0.1].",
    ),
]
SecureCookies = Annotated[
    bool | None,
    typer.Option(
        "--secure-cookies/--no-secure-cookies",
        help="Always mark the dashboard's session cookie Secure (named __Host-...), for a "
        "server reached only over HTTPS [env: RUNTRACK_SECURE_COOKIES; default: only "
        "for requests that arrived over HTTPS].",
        show_default=False,
    ),
]
CheckEvery = Annotated[
    float | None,
    typer.Option(
        "--check-every",
        min=0,
        max=86400,
        metavar="SECONDS",
        help="Seconds between two checks of the jobs' expectations, with notifications "
        "sent, by the server; 0: no checks [env: RUNTRACK_CHECK_EVERY; default: 30].",
        show_default=False,
    ),
]


def serve(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Workers = 1,
    access_log: AccessLog = True,
    forwarded_allow_ips: ForwardedAllowIps = None,
    secure_cookies: SecureCookies = None,
    check_every: CheckEvery = None,
) -> None:
    """Serve the HTTP API (/api) and the dashboard (/) with uvicorn, checking
    the jobs' expectations in the background (see runtrack check).

    Behind a reverse proxy that terminates TLS, pass the proxy's address as
    --forwarded-allow-ips (so that requests count as HTTPS and the session
    cookie is Secure), or --secure-cookies."""
    state = state_of(ctx)
    settings = state.settings().with_(
        **{
            name: value
            for name, value in (
                ("forwarded_allow_ips", forwarded_allow_ips),
                ("secure_cookies", secure_cookies),
                ("check_every", check_every),
            )
            if value is not None
        }
    )
    if workers == 1:
        with state.ledger() as ledger:
            serve_app(ledger, settings, host, port, access_log=access_log)
        return
    with state.ledger():  # migrate here once, not in every worker at the same time
        pass
    root = ctx.find_root().params
    level = logging.DEBUG if root.get("debug") else logging.INFO
    log = f"{root.get('log_format', 'rich')}:{level}"
    export_database_url(state)
    serve_workers(settings, host, port, workers, log, access_log=access_log)


def worker(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:RUNNER",
            help="Where your Runner is, e.g. myjobs.worker:runner (run from your project).",
        ),
    ],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            max=256,
            help="Runs at once in this process (default: the Runner's, 1).",
        ),
    ] = None,
) -> None:
    """Run your Runner's jobs until SIGTERM or Ctrl-C (a graceful stop).

    With --database-url, your module sees it as RUNTRACK_DATABASE_URL, so
    Ledger() and Ledger.from_settings() in it pick it up."""
    export_database_url(state_of(ctx))
    runner = load_runner(target)
    if concurrency is not None:
        runner.concurrency = concurrency
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
