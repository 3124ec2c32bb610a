"""The ``runtrack`` command line (Typer + Rich).

One module per group of commands: ``runs`` (runs, show, cancel),
``providers`` (jobs, providers, pause, resume), ``maintenance`` (migrate,
reap, prune), ``serving`` (serve, worker, demo), ``exec``; ``root`` holds the
root group, the global options and the exit-code table; ``launch`` is the
console script, which runs a plain ``runtrack exec`` before loading Typer.
"""

import importlib
from typing import TYPE_CHECKING, Any

from runtrack.cli.launch import main

if TYPE_CHECKING:
    from runtrack.cli.root import EXIT_CODES, app

__all__ = ["EXIT_CODES", "app", "main"]


def __getattr__(name: str) -> Any:
    # Typer and the commands load on first use: ``main`` first tries the
    # plain ``runtrack exec`` without them (see runtrack.cli.launch).
    if name in ("app", "EXIT_CODES"):
        module = importlib.import_module("runtrack.cli.root")
        globals().update(app=module.app, EXIT_CODES=module.EXIT_CODES)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
