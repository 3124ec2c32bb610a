"""Bad input: every public method of ``Ledger`` and ``Run`` (and the ledger's
constructor) is called with each argument in turn replaced by wrong types,
empty strings, huge values and hostile strings. Each call either accepts the
value (and then stores exactly what it was given) or raises a clear runtrack
error, one short line naming what was wrong, having written nothing. A
database error is never the answer to bad input."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from reliability_support import Figures
from typer.testing import CliRunner

from runtrack import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidInput,
    Ledger,
    Run,
    RunRecord,
    RunStatus,
    RuntrackError,
    Volume,
)
from runtrack.cli import app as cli_app
from runtrack.store import dialects
from runtrack.store.schema import metadata
from runtrack.workers import WorkerJob

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("timed")]

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOSTILE: list[Any] = [
    # wrong types
    object(),
    ["a"],
    {"a": 1},
    b"bytes",
    3.5,
    True,
    lambda: None,
    # empty
    "",
    "   ",
    None,
    # huge
    -1,
    0,
    2**63,
    10**30,
    float("nan"),
    float("inf"),
    "x" * 100_000,
    timedelta.max,
    -timedelta(seconds=1),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),
    "1e20s",
    # hostile strings
    "\x00",
    "a\nb\rc",
    "'; DROP TABLE runs; --",
    "\u202egnp.exe\u200b",
    "\U0001f4a5" * 100,
    "../../../etc/passwd",
    "%s%n{0}${jndi:x}",
    "\ud800",
]
FOR_SERVERS: list[Any] = [
    None,
    "",
    -1,
    2**63,
    10**30,
    "x" * 100_000,
    timedelta.max,
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),
    "\x00",
    "'; DROP TABLE runs; --",
    "\U0001f4a5" * 100,
    "\ud800",
]
_keys = itertools.count()


def fresh(prefix: str = "bad") -> str:
    return f"{prefix}:{next(_keys)}"


def seed(ledger: Ledger) -> int:
    """The id of the seeded run."""
    job = ledger.get_job("seed")
    assert job is not None and job.last_run_id is not None
    return job.last_run_id


def owed(ledger: Ledger) -> dict[str, Any]:
    """A fresh job owing one item: what ``forget_carried`` is called with."""
    job = fresh()
    with ledger.run(job) as run:
        run.item("lost", "error")
    return {"job": job, "entry_id": ledger.carried(job).items[0].id, "by": "me"}


def a_failed_run(ledger: Ledger) -> int:
    """A fresh run that failed: what a runner queues a retry of."""
    run = ledger.start_run(fresh())
    ledger.finish_run(run, RunStatus.FAILED, error="boom")
    return run.id


def a_backfill(ledger: Ledger) -> int:
    """A fresh backfill of two windows of job "seed"."""
    return ledger.backfill("seed", NOW - timedelta(days=2), NOW, every="1d").id


# What each method is called with when it is not the argument under attack. A
# factory, because some need fresh state (a live run, a job of their own).
Baseline = Callable[[Ledger], dict[str, Any]]
LEDGER_CALLS: dict[str, Baseline] = {
    "active_runs": lambda L: {"job": "seed"},
    "cancel": lambda L: {"run_id": L.create_run(fresh()).id, "by": "me", "reason": "why"},
    "carried": lambda L: {"job": "seed"},
    "check": lambda L: {},
    "count_failed": lambda L: {"since": NOW},
    "deliver": lambda L: {},
    "deliveries": lambda L: {"incident_ids": [1]},
    "expect": lambda L: {
        "job": fresh(),
        "success_within": "1h",
        "max_failures": 3,
        "volume": {"n": Volume(min_ratio=0.2)},
        "required": ["n"],
        "remind_every": "1h",
    },
    "expectations": lambda L: {"job": "seed"},
    "healths": lambda L: {"provider": "seed"},
    "incidents": lambda L: {"job": "seed", "open_only": False, "limit": 5},
    "job_health": lambda L: {"job": "seed"},
    "claim": lambda L: {"concurrency": {"seed": 1}, "paused": ["p"]},
    "claimed": lambda L: {"run": L.start_run(fresh())},
    "limit_provider": lambda L: {"provider": fresh("p"), "max_running": 2},
    "pending_count": lambda L: {"jobs": ["seed"]},
    "provider_limits": lambda L: {},
    "rerun": lambda L: {"run_id": seed(L), "by": "me"},
    "retry_queued": lambda L: {"run_id": a_failed_run(L), "retry_policy": {"max_attempts": 2}},
    # Issue 17: backfills.
    "backfill": lambda L: {
        "job": "seed",
        "start": NOW - timedelta(days=3),
        "end": NOW,
        "every": "1d",
        "by": "me",
        "max_parallel": 2,
    },
    "resume_backfill": lambda L: {"backfill_id": a_backfill(L), "by": "me"},
    "cancel_backfill": lambda L: {"backfill_id": a_backfill(L), "by": "me"},
    "get_backfill": lambda L: {"backfill_id": a_backfill(L)},
    "backfill_windows": lambda L: {"backfill_id": a_backfill(L)},
    "backfills": lambda L: {"job": "seed", "limit": 5},
    "trigger": lambda L: {
        "job": "seed",
        "params": {"q": 1},
        "by": "me",
        "window_start": NOW - timedelta(hours=1),
        "window_end": NOW,
    },
    "register_worker": lambda L: {
        "worker_id": fresh("w"),
        "jobs": [WorkerJob("seed", "every 1h", None)],
        "concurrency": 2,
        "providers": {"seed": "seed"},
    },
    "worker_seen": lambda L: {"worker_id": fresh("w")},
    "worker_stopped": lambda L: {"worker_id": fresh("w")},
    "workers": lambda L: {"recent": "1d"},
    "claim_maintenance": lambda L: {"task": fresh("task"), "every": 60},
    "claim_tick": lambda L: {"job": "seed", "due": None, "next_due": NOW},
    "count_runs": lambda L: {"job": "seed"},
    "count_stale": lambda L: {},
    "count_started": lambda L: {"status": "success", "since": NOW},
    "create_run": lambda L: {"job": fresh(), "provider": "p", "params": {"q": 1}},
    "ensure_job": lambda L: {"job": fresh(), "provider": "p"},
    "finish_run": lambda L: {
        "run": L.start_run(fresh()),
        "status": "success",
        "counters": {"n": 1},
        "error": "e",
        "error_type": "t",
    },
    "forget_carried": owed,
    "get_job": lambda L: {"job": "seed"},
    "get_jobs": lambda L: {"jobs": ["seed"]},
    "get_run": lambda L: {"run_id": seed(L)},
    "group_summary": lambda L: {"run_id": seed(L)},
    "health": lambda L: {},
    "heartbeat_now": lambda L: {},
    "job_state": lambda L: {"job": "seed"},
    "job_states": lambda L: {"provider": "seed"},
    "job_tallies": lambda L: {},
    "jobs": lambda L: {"provider": "seed"},
    "job_providers": lambda L: {},
    "last_maintenance": lambda L: {"task": "reap"},
    "last_successful_run": lambda L: {"job": "seed"},
    "list_items": lambda L: {"run_id": seed(L), "status": "success", "group": "g", "limit": 5},
    "list_runs": lambda L: {"job": "seed", "status": "success", "since": NOW, "limit": 5},
    "list_runs_by_page": lambda L: {"page": 1, "limit": 5, "job": "seed"},
    "migrate": lambda L: {},
    "now": lambda L: {},
    "pause": lambda L: {"provider": fresh("p"), "for_": "1h", "reason": "r", "by": "me"},
    "paused": lambda L: {"provider": "seed"},
    "pauses": lambda L: {},
    "providers": lambda L: {},
    "prune": lambda L: {"older_than": "90d", "batch_size": 10, "dry_run": True},
    "reap": lambda L: {"stale_after": 3600},
    "recent_outcomes": lambda L: {"jobs": ["seed"]},
    "recent_runs": lambda L: {"limit": 5},
    "recent_runs_of_jobs": lambda L: {"jobs": ["seed"], "limit": 5},
    "resume": lambda L: {"provider": fresh("p")},
    "revoke_session": lambda L: {"nonce": fresh("n"), "expires_at": NOW + timedelta(days=3650)},
    "run": lambda L: {
        "job": fresh(),
        "provider": "p",
        "window_end": None,
        "on_partial": "hold",
        "max_carry_attempts": 3,
    },
    "run_filter": lambda L: {"job": "seed", "status": "success"},
    "schema_revision": lambda L: {},
    "session_revoked": lambda L: {"nonce": "seed"},
    "skip_tick": lambda L: {"job": "seed", "reason": "busy: 1 of 1 slot held by run 1"},
    "start_run": lambda L: {"job": fresh(), "provider": "p", "triggered_by": "me"},
    "tracked": lambda L: {"job": fresh(), "provider": "p"},
    "watermark": lambda L: {"job": "seed"},
}
#: Methods whose whole point is to end or delete something: they are exempt
#: from "nothing lost", not from "nothing written when refused" (a sign-out
#: forgets the sign-outs of cookies that have expired).
DELETES = {"forget_carried", "prune", "resume", "revoke_session"}
#: Not attacked: they take no argument and stop the ledger.
SKIPPED = {"close", "from_settings"}

RUN_CALLS: dict[str, dict[str, Any]] = {
    "advance": {"n": 1},
    "check_cancelled": {},
    "count": {"name": "pages", "n": 1},
    "error": {"message": "bad row"},
    "failed_slice": {"start": NOW - timedelta(hours=1), "end": NOW, "reason": "HTTP 502"},
    "item": {
        "key": "k",
        "status": "success",
        "group": "g",
        "source": "s",
        "data": {},
        "error": "e",
    },
    "note": {"text": "a note"},
    "save_checkpoint": {"value": {"page": 1}},
    "set_counter": {"name": "offers", "value": 2},
    "set_total": {"n": 10},
}
LEDGER_OPTIONS: dict[str, Any] = {
    "heartbeat_interval": 0.05,
    "stale_after": 60,
    "cancel_grace": 30,
    "item_batch_size": 10,
    "finalize_timeout": 1.0,
    "worker_id": "worker-1",
    "listeners": (),
    "pending_ttl": "24h",
}


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name in dir(cls)
        if not name.startswith("_")
        and callable(inspect.getattr_static(cls, name))
        and not isinstance(inspect.getattr_static(cls, name), property)
    }


def test_every_public_method_is_attacked() -> None:
    """A method added later without a row here fails this test."""
    assert public_methods(Ledger) - SKIPPED == set(LEDGER_CALLS)
    assert public_methods(Run) == set(RUN_CALLS)


# -- the database's state, to prove nothing was written ------------------------------------


def snapshot(engine: sa.Engine) -> tuple[dict[str, int], str]:
    """Row counts per table and a digest of every row."""
    counts, digest = {}, hashlib.sha256()
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            counts[table.name] = len(rows)
            digest.update(repr(sorted(map(repr, rows))).encode())
    return counts, digest.hexdigest()


@pytest.fixture
def seeded(db_url: str) -> Iterator[tuple[Ledger, sa.Engine]]:
    """A ledger with one finished run (job "seed", items in a group)."""
    engine = dialects.make_engine(db_url)
    # No background heartbeats: between two snapshots only the call under test writes.
    with Ledger(db_url, heartbeat_interval=3600, finalize_timeout=1.0) as ledger:
        with ledger.run("seed", provider="seed") as run:
            run.count("pages", 3)
            run.item("a", "success", group="g", source="s")
            run.item("b", "error", group="g", error="boom")
        yield ledger, engine
        for active in ledger.active_runs():
            ledger.finish_run(active.id, RunStatus.CANCELLED)
    engine.dispose()


class Verdicts:
    """What the attacks on one method found."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.accepted = self.refused = 0
        self.problems: list[str] = []

    def refused_cleanly(self, call: str, value: Any, exc: BaseException) -> None:
        """``call`` is ``method(arg``: the value and the verdict complete it."""
        text = str(exc)
        if isinstance(exc, DatabaseUnavailable) or not isinstance(exc, RuntrackError):
            self.problems.append(f"{call}={_short(value)}): {_name(exc)}: {text}")
        elif "\n" in text or len(text) > 500 or not text:
            self.problems.append(f"{call}={_short(value)}): unclear {text!r:.200}")
        self.refused += 1

    def check(self, figures: Figures, backend: str) -> None:
        figures.add("bad_input", backend, calls=self.accepted + self.refused)
        figures.add("bad_input", backend, refused=self.refused, problems=len(self.problems))
        assert not self.problems, "\n".join(self.problems[:20])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


def _name(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def hostile(backend: str) -> list[Any]:
    """Every hostile value on SQLite; on the servers, those a database can
    trip over (the rest never get past Python, whatever the database)."""
    return HOSTILE if backend == "sqlite" else FOR_SERVERS


@pytest.mark.parametrize("method", sorted(LEDGER_CALLS))
def test_ledger_methods_refuse_bad_input_cleanly(
    method: str, seeded: tuple[Ledger, sa.Engine], backend: str, figures: Figures
) -> None:
    ledger, engine = seeded
    verdicts = Verdicts("Ledger")
    baseline = LEDGER_CALLS[method]
    call(ledger, method, baseline(ledger))  # the baseline itself is valid
    for arg in baseline(ledger):
        for value in hostile(backend):
            attack(ledger, engine, method, {**baseline(ledger), arg: value}, arg, verdicts)
    verdicts.check(figures, backend)


def attack(
    ledger: Ledger,
    engine: sa.Engine,
    method: str,
    kwargs: dict[str, Any],
    arg: str,
    verdicts: Verdicts,
) -> None:
    """One hostile call: refused without a write, or accepted and stored as given."""
    value, before = kwargs[arg], snapshot(engine)
    given = dict(kwargs)
    try:
        result = call(ledger, method, kwargs)
    except BaseException as exc:
        verdicts.refused_cleanly(f"{method}({arg}", value, exc)
        if snapshot(engine) != before:
            verdicts.problems.append(f"{method}({arg}={_short(value)}) wrote, then raised")
        return
    verdicts.accepted += 1
    after = snapshot(engine)
    lost = [t for t, n in before[0].items() if after[0][t] < n]
    if lost and method not in DELETES:
        verdicts.problems.append(f"{method}({arg}={_short(value)}) lost rows of {lost}")
    if isinstance(result, RunRecord | Run):
        record = ledger.get_run(result.id)
        for name in ("job", "provider", "params", "triggered_by"):
            if name in given and getattr(record, name) != given[name]:
                verdicts.problems.append(f"{method}({name}={_short(value)}) stored otherwise")
    finish(ledger, result)


def call(ledger: Ledger, method: str, kwargs: dict[str, Any]) -> Any:
    """Call ``method`` with ``kwargs``, positional where the signature says so."""
    fn = getattr(ledger, method)
    params = inspect.signature(fn).parameters
    args = [
        kwargs.pop(name)
        for name, p in params.items()
        if p.kind is p.POSITIONAL_OR_KEYWORD and name in kwargs
    ]
    result = fn(*args, **kwargs)
    if method == "tracked":
        result(lambda: None)()  # the decorated function runs as a run
    return result


def finish(ledger: Ledger, result: Any) -> None:
    """End what an accepted call started, so the next call starts afresh."""
    if isinstance(result, Run):
        ledger.finish_run(result, RunStatus.SUCCESS)


def test_run_methods_refuse_bad_input_and_keep_the_run(
    seeded: tuple[Ledger, sa.Engine], backend: str, figures: Figures
) -> None:
    ledger, _ = seeded
    verdicts = Verdicts("Run")
    for method in sorted(RUN_CALLS):
        attack_run(ledger, method, hostile(backend), verdicts)
    verdicts.check(figures, backend)


def attack_run(ledger: Ledger, method: str, values: list[Any], verdicts: Verdicts) -> None:
    run = ledger.start_run(fresh())
    run.count("kept", 1)
    accepted: list[tuple[str, Any]] = []
    for arg in RUN_CALLS[method]:
        for value in values:
            kwargs = dict(RUN_CALLS[method], **{arg: value})
            state = (run.counters, run.progress, run.item_counts, len(run._items))
            try:
                getattr(run, method)(**kwargs)
            except BaseException as exc:
                verdicts.refused_cleanly(f"Run.{method}({arg}", value, exc)
                if (run.counters, run.progress, run.item_counts, len(run._items)) != state:
                    verdicts.problems.append(f"Run.{method}({arg}={_short(value)}) changed the run")
                continue
            verdicts.accepted += 1
            accepted.append((arg, value))
    # Whatever was accepted must be stored as given, and must not stop the run
    # from being recorded: a value the database refuses would lose it all.
    try:
        record = ledger.finish_run(run, RunStatus.SUCCESS)
    except BaseException as exc:
        verdicts.problems.append(f"finishing after Run.{method} accepted {accepted!r:.300}: {exc}")
    else:
        if record.counters.get("kept") != 1:
            verdicts.problems.append(f"Run.{method}: counters lost {record.counters}")


def test_the_ledger_refuses_bad_options_when_it_is_made(
    db_url: str, backend: str, figures: Figures
) -> None:
    """A bad option is refused by ``Ledger(...)``, not by the first run that
    trips over it (or by a finalization that can never be written)."""
    verdicts = Verdicts("Ledger(...)")
    for option, value in itertools.product(sorted(LEDGER_OPTIONS), hostile(backend)):
        try:
            ledger = Ledger(db_url, **{**LEDGER_OPTIONS, option: value})
        except BaseException as exc:
            verdicts.refused_cleanly(f"Ledger({option}", value, exc)
            continue
        verdicts.accepted += 1
        try:
            with ledger, ledger.run(fresh()) as run:
                run.count("n")
        except BaseException as exc:
            verdicts.problems.append(f"accepted {option}={_short(value)}, then a run: {exc!r}")
    verdicts.check(figures, backend)


BAD_URLS = [
    "",
    "   ",
    "nonsense",
    "sqlite://",
    "sqlite:///:memory:",
    "oracle://x/y",
    "mysql+nodriver://x/y",
    "postgresql://u@127.0.0.1:1/db",  # nothing listens on port 1
    42,
    b"sqlite:///x",
]


@pytest.mark.parametrize("url", BAD_URLS, ids=repr)
def test_a_bad_url_is_a_configuration_error(url: Any, figures: Figures) -> None:
    with pytest.raises((ConfigurationError, InvalidInput, DatabaseUnavailable)) as caught:
        Ledger(url)
    assert str(caught.value) and len(str(caught.value)) < 500  # a driver's may span lines
    figures.add("bad_input", "any", calls=1, refused=1)


# -- the CLI -------------------------------------------------------------------------------

CLI_HOSTILE = [
    "",
    "   ",
    "-1",
    "0",
    "9223372036854775808",
    "1" + "0" * 30,
    "nan",
    "inf",
    "1e20s",
    "x" * 100_000,
    "a\nb",
    "\x00",
    "'; DROP TABLE runs; --",
    "\u202egnp.exe",
    "\U0001f4a5" * 100,
    "../../../etc/passwd",
    "%s%n{0}${jndi:x}",
    "--json",
    "\ud800",
]
#: command -> (arguments that make a valid call, the options and arguments
#: attacked). "ID" is replaced by the seeded run's id; an attacked argument
#: is named by its position in the valid call.
CLI_CALLS: dict[str, tuple[list[str], list[str | int]]] = {
    "runs": (
        ["runs"],
        [
            "--job",
            "--provider",
            "--status",
            "--triggered-by",
            "--since",
            "--until",
            "--limit",
            "--cursor",
        ],
    ),
    "show": (["show", "ID"], [1]),
    "items": (["items", "ID"], [1, "--status", "--group", "--limit", "--cursor"]),
    "groups": (["groups", "ID"], [1]),
    "cancel": (["cancel", "ID", "--reason", "r", "--by", "me"], [1, "--reason", "--by"]),
    "jobs": (["jobs"], ["--provider"]),
    "check": (["check"], []),
    "incidents": (["incidents", "--job", "seed"], ["--job", "--limit"]),
    "carried": (["carried", "seed"], [1, "--forget"]),
    "providers": (["providers"], []),
    "pause": (
        ["pause", "p", "--reason", "r", "--for", "1m"],
        [1, "--reason", "--for", "--until", "--by"],
    ),
    "resume": (["resume", "p"], [1]),
    "migrate": (["migrate"], []),
    "trigger": (["trigger", "seed", "--param", "k=v", "--by", "me"], [1, "--param", "--by"]),
    "rerun": (["rerun", "ID", "--by", "me"], [1, "--by"]),
    "limit": (["limit", "p", "2"], [1, 2]),
    "workers": (["workers"], ["--recent"]),
    "backfill": (
        ["backfill", "seed", "--from", "3d", "--to", "1d", "--every", "1d", "--by", "me"],
        [1, "--from", "--to", "--every", "--max-parallel", "--by"],
    ),
    "backfills": (["backfills"], ["--job", "--limit"]),
    "reap": (["reap"], ["--stale-after"]),
    "prune": (["prune", "--older-than", "90d", "--dry-run"], ["--older-than", "--batch-size"]),
    # Long-running commands: only values that must be refused (a valid one would serve).
    "serve": (["serve"], ["--port"]),
    "worker": (["worker", "runtrack.demo.jobs:runner"], [1]),
    "demo": (["demo", "--no-serve"], ["--duration"]),
    "exec": (
        [
            "exec",
            "job",
            "--provider",
            "p",
            "--param",
            "k=v",
            "--timeout",
            "1m",
            "--concurrency",
            "1",
            "--",
            "true",
        ],
        [1, "--provider", "--param", "--timeout", "--concurrency"],
    ),
}
LONG_RUNNING = {"serve", "worker", "demo"}


def test_every_cli_command_is_attacked() -> None:
    group = typer.main.get_command(cli_app)
    assert set(group.commands) == set(CLI_CALLS)  # type: ignore[attr-defined]


def invoke(db_url: str, args: list[str], timeout: float = 30.0) -> tuple[int, str, str]:
    """Run ``runtrack`` in this process (in a thread, so that a command that
    wrongly starts serving fails the test instead of hanging it)."""
    done: list[Any] = []

    def go() -> None:
        result = CliRunner().invoke(
            cli_app, ["--database-url", db_url, *args], env={"COLUMNS": "200"}
        )
        done.append((result.exit_code, result.stdout, result.stderr))

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(timeout)
    if not done:
        return -1, "", f"still running after {timeout} s"
    return done[0]


def cli_attacks(command: str, seed_id: int) -> Iterator[tuple[str, list[str]]]:
    valid, attacked = CLI_CALLS[command]
    valid = [str(seed_id) if a == "ID" else a for a in valid]
    for target in attacked:
        for value in CLI_HOSTILE:
            args = list(valid)
            if isinstance(target, int):
                args[target] = value
            elif target in args:
                args[args.index(target) + 1] = value
            else:
                args += [target, value]
            yield f"{command} {target}={_short(value)}", args
    yield f"{command} + stray argument", [*valid, "'; DROP TABLE runs; --"]


@pytest.mark.parametrize("backend", ["sqlite"])  # parsing comes before any database
@pytest.mark.parametrize("command", sorted(CLI_CALLS))
def test_cli_commands_refuse_bad_input_with_one_line(
    command: str,
    seeded: tuple[Ledger, sa.Engine],
    db_url: str,
    backend: str,
    figures: Figures,
) -> None:
    ledger, engine = seeded
    problems: list[str] = []
    calls = 0
    for name, args in cli_attacks(command, seed(ledger)):
        before = snapshot(engine)
        code, out, err = invoke(db_url, args)
        calls += 1
        if code not in (0, 1, 2) or "Traceback" in out + err or "runtrack: unexpected" in err:
            problems.append(f"{name}: exit {code}: {err[-300:]!r}")
        elif code != 0 and (len(err.strip().splitlines()) != 1 or out):
            problems.append(f"{name}: exit {code} without one line: {err[:300]!r}")
        elif code != 0 and snapshot(engine) != before:
            problems.append(f"{name}: exit {code} after writing")
        elif code == 0 and command in LONG_RUNNING:
            problems.append(f"{name}: accepted (it would have run)")
    figures.add("bad_input_cli", backend, calls=calls, problems=len(problems))
    assert not problems, "\n".join(problems[:20])


def test_an_exception_the_database_cannot_store_still_fails_its_run(
    db_url: str, backend: str, figures: Figures
) -> None:
    """The job's own exception is not input runtrack can refuse: its message
    (NUL bytes, lone surrogates, megabytes) must not keep the run from ending
    ``failed`` with it, nor replace the exception the caller sees."""

    class Hostile(Exception):
        pass

    message = "row \x00 had \ud800 in it " + "x" * 200_000
    with Ledger(db_url, heartbeat_interval=0.05, finalize_timeout=1.0) as ledger:
        with pytest.raises(Hostile), ledger.run(fresh()) as run:
            raise Hostile(message)
        record = ledger.get_run(run.id)
    assert record.status is RunStatus.FAILED
    assert record.error_type is not None and record.error_type.endswith(".Hostile")
    assert record.error_message is not None and record.error_message.startswith("row ")
    assert record.error_stack is not None and "Hostile" in record.error_stack
    figures.add("bad_input", backend, calls=1, refused=0)
