"""The ``runtrack`` command line (Typer + Rich).

One module per group of commands: ``runs`` (runs, show, cancel),
``providers`` (jobs, providers, pause, resume), ``maintenance`` (migrate,
reap, prune), ``serving`` (serve, worker, demo); ``app`` holds the root
group, the global options and the exit-code table.
"""

from runtrack.cli.app import EXIT_CODES, app, main

__all__ = ["EXIT_CODES", "app", "main"]
