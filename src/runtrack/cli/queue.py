"""``runtrack trigger``, ``rerun`` and ``limit`` (issue 17): queue a run for
the workers, re-run one, cap a provider's running runs."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from runtrack import inputs, vocabulary
from runtrack.cli.render import jsonable
from runtrack.cli.state import err_console, print_json, state_of, user_name
from runtrack.ledger import Ledger
from runtrack.models import GOOD, RunRecord, RunStatus
from runtrack.readable import clock, span
from runtrack.waiting import Waiting, queue_of

__all__ = ["register"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")]
WaitFlag = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Follow the run until it ends: exit 0 on success or partial, 1 otherwise.",
    ),
]
Timeout = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        metavar="DURATION",
        help="With --wait: stop following after this long (30s, 5m, 1h); exit 1, the run "
        "stays queued or running.",
    ),
]
By = Annotated[str | None, typer.Option(help="Who asks (default: user:<your user name>).")]
FOLLOW_EVERY = 0.2  # seconds between two reads of a followed run
WHY_EVERY = 5.0  # seconds between two looks at why a queued run waits


def parse_param(value: str) -> tuple[str, Any]:
    """``k=v``: ``v`` as JSON if it is JSON (``2``, ``true``, ``[1,2]``), else text."""
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{value!r} is not k=v", param_hint="--param")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def trigger(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(metavar="JOB", help="The job's key.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", metavar="K=V", help="A param k=v (repeat it); v is JSON or text."
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", metavar="NAME=VALUE", help="A label of the run (repeat it)."),
    ] = None,
    by: By = None,
    wait: WaitFlag = False,
    timeout: Timeout = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a run of JOB now; a worker serving the job runs it.

    A pending run of JOB with the same params and labels is reused (a double
    trigger queues one run). With --wait, while the run is queued, says why
    it waits (no live worker serving JOB, a pause, a limit...)."""
    params = dict(parse_param(p) for p in param or []) or None
    labels = inputs.label_pairs("--label", label, "=") if label else None
    limit = _timeout(timeout, wait)
    with state_of(ctx).ledger() as ledger:
        run = ledger.trigger(job, params=params, by=by or f"user:{user_name()}", labels=labels)
        _report(ledger, run, "queued", wait, as_json, limit)


def rerun(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN_ID", min=1, help="The run to run again.")],
    by: By = None,
    wait: WaitFlag = False,
    timeout: Timeout = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a run of the same job with the same params and window as RUN_ID."""
    limit = _timeout(timeout, wait)
    with state_of(ctx).ledger() as ledger:
        run = ledger.rerun(run_id, by=by or f"user:{user_name()}")
        _report(ledger, run, f"queued (re-run of {run_id})", wait, as_json, limit)


def limit(
    ctx: typer.Context,
    provider: Annotated[str, typer.Argument(help="The provider.")],
    max_running: Annotated[
        int | None,
        typer.Argument(min=1, help="Most running runs at once, every worker together."),
    ] = None,
    lift: Annotated[bool, typer.Option("--lift", help="Remove the provider's limit.")] = False,
) -> None:
    """Cap PROVIDER's running runs across every worker (checked when a
    queued run is claimed), or lift the cap with --lift."""
    if (max_running is None) != lift:
        raise typer.BadParameter("give MAX_RUNNING, or --lift", param_hint="MAX_RUNNING")
    with state_of(ctx).ledger() as ledger:
        ledger.limit_provider(provider, None if lift else max_running)
    said = "lifted" if lift else f"at most {max_running} running run(s)"
    err_console().print(f"provider {provider}: {said}")


def _timeout(text: str | None, wait: bool) -> float | None:
    """``--timeout`` in seconds, refused without ``--wait`` (it bounds the wait)."""
    if text is None:
        return None
    if not wait:
        raise typer.BadParameter("bounds --wait: give --wait too", param_hint="--timeout")
    return inputs.duration("--timeout", text).total_seconds()


def _report(
    ledger: Ledger,
    run: RunRecord,
    what: str,
    wait: bool,
    as_json: bool,
    timeout: float | None = None,
) -> None:
    if not as_json:
        err_console().print(f"run {run.id} of {run.job}: {what}")
    if wait:
        run = _follow(ledger, run, timeout)
    if as_json:
        print_json(jsonable(vocabulary.run_detail(run, ledger.now())))
    elif wait and run.is_active:
        err_console().print(
            f"run {run.id} of {run.job}: still {run.status.value} after {span(timeout)}; "
            "it goes on without this command"
        )
    elif wait:
        err_console().print(f"run {run.id} of {run.job}: {run.status.value}")
    if wait and run.status not in GOOD:
        raise typer.Exit(1)


def _follow(ledger: Ledger, run: RunRecord, timeout: float | None) -> RunRecord:
    """Read the run until it ends (or ``timeout`` seconds pass), saying when
    it starts and, while it is queued, why it waits whenever that changes."""
    shown, why, started = run.status, None, time.monotonic()
    looked = -WHY_EVERY
    while run.is_active:
        waited = time.monotonic() - started
        if run.status is RunStatus.PENDING and waited - looked >= WHY_EVERY:
            looked, now = waited, ledger.now()
            waiting = next((w for w in queue_of(ledger, run.job, run.provider, now)
                            if w.run.id == run.id), None)  # fmt: skip
            if waiting is not None and waiting.cause != why:
                err_console().print(f"run {run.id}: waits: {_why(waiting)}")
                why = waiting.cause
        if timeout is not None and waited >= timeout:
            break
        time.sleep(FOLLOW_EVERY)
        run = ledger.get_run(run.id)
        if run.status is not shown and run.is_active:
            err_console().print(f"run {run.id}: {run.status.value} on {run.worker_id}")
            shown = run.status
    return run


def _why(waiting: Waiting) -> str:
    """Why a queued run waits, and when it expires unclaimed."""
    if waiting.expires_at is None:
        return waiting.why
    return f"{waiting.why}; unclaimed, it expires at {clock(waiting.expires_at)}"


def register(app: typer.Typer) -> None:
    app.command("trigger")(trigger)
    app.command("rerun")(rerun)
    app.command("limit")(limit)
