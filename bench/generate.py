"""A generated ledger at scale: N runs over J jobs, as runtrack would have
written them over 90 days (mixed statuses, counters, windows, job state and
tallies that agree with the runs, items for 1% of the runs, a few active and
stale runs, labels: every run its job's ``team`` of 5, 1% a rare one), loaded
with the fastest bulk path of each database.

The SQLite file is cached under ``bench/.data/`` keyed by the parameters, the
generator's version and the schema revision, so reruns skip the load.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runtrack.models import GOOD, RunStatus
from runtrack.store import migrate
from runtrack.store.rows import strip_cell
from runtrack.store.schema import DURATION_BOUNDS, STRIP_LENGTH

__all__ = ["RARE_LABEL", "TEAMS", "Shape", "Spec", "generate_postgres", "generate_sqlite"]

VERSION = 6  # bump when the generated data changes
DATA = Path(__file__).parent / ".data"
END = datetime(2026, 6, 1, tzinfo=UTC)  # the generated ledger's "now"
SPAN = timedelta(days=90)
CHUNK = 20_000
ACTIVE_JOBS = 20  # jobs whose newest run is running (heartbeating)
PENDING_JOBS = 5  # then pending
STALE_JOBS = 3  # then running without a heartbeat for hours
WEIGHTS = (
    (RunStatus.SUCCESS, 0.85),
    (RunStatus.PARTIAL, 0.05),
    (RunStatus.FAILED, 0.07),
    (RunStatus.CANCELLED, 0.03),
)

RUN_COLUMNS = [
    "id",
    "uid",
    "job_key",
    "provider",
    "status",
    "lease_key",
    "attempt",
    "triggered_by",
    "params",
    "host",
    "pid",
    "worker_id",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "counters",
    "progress_total",
    "progress_done",
    "window_start",
    "window_end",
    "moves_watermark",
    "checkpoint",
    "error_type",
    "error_message",
    "items_success",
    "items_not_found",
    "items_skipped",
    "items_error",
]
#: Every run's ``team`` label is its job's, one of these (a fifth of the runs each).
TEAMS = ("growth", "core", "search", "ads", "data")
#: The label of 1% of the runs: every 97th (a stride prime to the job count,
#: so that it falls on every job, and so on every team, not on one).
RARE_LABEL = ("reason", "hotfix")
RARE_EVERY = 97
LABEL_COLUMNS = ("run_id", "key", "value")
ITEM_COLUMNS = ("run_id", "key", "status", "data", "error", "recorded_at")
JOB_COLUMNS = ("key", "provider", "created_at", "consecutive_failures")
JOB_STATE = [
    "last_run_id",
    "last_status",
    "last_finished_at",
    "last_success_at",
    "last_success_run_id",
    "consecutive_failures",
    "watermark",
    "checkpoint",
    "recent_runs",
]
TALLY_COLUMNS = [
    "job_key",
    "status",
    "runs",
    "items_success",
    "items_not_found",
    "items_skipped",
    "items_error",
    "duration_count",
    "duration_sum",
] + [f"le_{bound}" for bound in DURATION_BOUNDS]


@dataclass(frozen=True, slots=True)
class Spec:
    runs: int
    jobs: int
    item_share: float
    items_per_run: int
    seed: int = 7

    @property
    def key(self) -> str:
        share = f"{self.item_share:g}".replace(".", "p")
        head = migrate.head_revision()
        sizes = f"r{self.runs}-j{self.jobs}-i{share}x{self.items_per_run}"
        return f"{sizes}-s{self.seed}-v{VERSION}-m{head}"


@dataclass(slots=True)
class Shape:
    """What the queries need to know about a generated ledger."""

    anchor: str  # the ledger's "now", ISO
    runs: int
    items: int
    job_keys: list[str]
    never_succeeded: str
    items_run: int  # a run with items
    seconds: float = 0.0  # how long the load took (0: from the cache)
    extra: dict[str, Any] = field(default_factory=dict)


def _job_key(j: int) -> str:
    return f"bench:job:{j:03d}"


class _Job:
    __slots__ = (
        "checkpoint",
        "fails",
        "key",
        "last",
        "provider",
        "recent",
        "success",
        "watermark",
    )

    def __init__(self, j: int) -> None:
        self.key = _job_key(j)
        self.provider = f"provider-{j % 10}"
        self.watermark: datetime | None = None
        self.checkpoint: Any = None
        self.last: tuple[int, str, datetime] | None = None  # id, status, finished
        self.success: tuple[int, datetime] | None = None
        self.fails = 0
        self.recent: deque[str] = deque(maxlen=STRIP_LENGTH)  # strip cells, newest first


class _Generator:
    """Produces runs in id order, keeping job state and tallies as it goes."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.jobs = [_Job(j) for j in range(spec.jobs)]
        self.tallies: dict[tuple[str, str], list[Any]] = {}
        self.step = SPAN / spec.runs
        self.start = END - SPAN
        self.items: list[tuple[Any, ...]] = []
        self.item_count = 0
        self.items_run = 0
        self.every = max(1, round(1 / spec.item_share)) if spec.item_share else 0

    def _status(self, i: int, j: int) -> RunStatus:
        newest = i >= self.spec.runs - self.spec.jobs
        if newest and j < ACTIVE_JOBS + STALE_JOBS:
            return RunStatus.RUNNING
        if newest and j < ACTIVE_JOBS + STALE_JOBS + PENDING_JOBS:
            return RunStatus.PENDING
        if j == self.spec.jobs - 1:
            return RunStatus.FAILED  # the job that never succeeded
        x = self.rng.random()
        for status, weight in WEIGHTS:
            if x < weight:
                return status
            x -= weight
        return RunStatus.SUCCESS

    def runs(self) -> Iterator[tuple[Any, ...]]:
        for i in range(self.spec.runs):
            yield self._run(i)

    def _run(self, i: int) -> tuple[Any, ...]:
        j = i % self.spec.jobs
        job = self.jobs[j]
        status = self._status(i, j)
        created = self.start + self.step * i
        run_id = i + 1
        active = status in (RunStatus.RUNNING, RunStatus.PENDING)
        started = None if status is RunStatus.PENDING else created + timedelta(seconds=1)
        seconds = 1 + self.rng.expovariate(1 / 90)
        finished = None if active else created + timedelta(seconds=1 + seconds)
        beat = finished
        if status is RunStatus.RUNNING:
            stale = j >= ACTIVE_JOBS
            beat = END - (timedelta(hours=3) if stale else timedelta(seconds=5))
        tallied = self._items(run_id, status, started) if self._has_items(i, active) else (0,) * 4
        fetched = self.rng.randrange(0, 500)
        counters = json.dumps({"fetched": fetched, "upserted": fetched // 2})
        failed = status is RunStatus.FAILED
        row = (
            run_id,
            f"00000000-0000-4000-8000-{run_id:012x}",
            job.key,
            job.provider,
            status.value,
            f"{job.key}#0" if active else None,
            1,
            "user:alice" if i % 50 == 0 else "schedule",
            None,
            "bench-host",
            1000 + j,
            f"bench-host:{1000 + j}",
            created,
            started,
            finished,
            beat,
            counters,
            fetched,
            fetched,
            job.watermark,
            created,
            True,
            None,
            "RuntimeError" if failed else None,
            "source answered 503" if failed else None,
            *tallied,
        )
        if not active:
            assert finished is not None and started is not None
            self._finish(job, run_id, status, created, finished)
            job.recent.appendleft(strip_cell(run_id, status, started, finished))
            self._tally(job.key, status, seconds, tallied)
        return row

    def labels(self) -> Iterator[tuple[Any, ...]]:
        """Every run's labels, in run id order."""
        rare_key, rare_value = RARE_LABEL
        for i in range(self.spec.runs):
            yield (i + 1, "team", TEAMS[(i % self.spec.jobs) % len(TEAMS)])
            if i % RARE_EVERY == 37:
                yield (i + 1, rare_key, rare_value)

    def _has_items(self, i: int, active: bool) -> bool:
        return bool(self.every) and i % self.every == self.every // 2 and not active

    def _items(
        self, run_id: int, status: RunStatus, started: datetime | None
    ) -> tuple[int, int, int, int]:
        n = self.spec.items_per_run
        errors = 1 if status in (RunStatus.PARTIAL, RunStatus.FAILED) else 0
        for k in range(n):
            error = k >= n - errors
            self.items.append(
                (
                    run_id,
                    f"offer-{run_id}-{k}",
                    "error" if error else "success",
                    json.dumps({"price": k}) if k % 5 == 0 else None,
                    "HTTP 500" if error else None,
                    started,
                )
            )
        self.item_count += n
        self.items_run = run_id
        return (n - errors, 0, 0, errors)

    def _finish(
        self, job: _Job, run_id: int, status: RunStatus, end: datetime, finished: datetime
    ) -> None:
        job.last = (run_id, status.value, finished)
        if status in GOOD:
            job.watermark = end
            job.checkpoint = {"cursor": run_id}
        if status is RunStatus.SUCCESS:
            job.success = (run_id, finished)
        if status is RunStatus.FAILED:
            job.fails += 1
        elif status in GOOD:
            job.fails = 0

    def _tally(self, job: str, status: RunStatus, seconds: float, items: tuple[int, ...]) -> None:
        row = self.tallies.setdefault(
            (job, status.value), [0, 0, 0, 0, 0, 0, 0.0] + [0] * len(DURATION_BOUNDS)
        )
        row[0] += 1
        for n, value in enumerate(items):
            row[1 + n] += value
        row[5] += 1
        row[6] += seconds
        bucket = next((n for n, b in enumerate(DURATION_BOUNDS) if seconds <= b), None)
        if bucket is not None:
            row[7 + bucket] += 1

    def new_jobs(self) -> list[tuple[Any, ...]]:
        """The jobs as first created (their runs refer to them)."""
        return [(job.key, job.provider, self.start, 0) for job in self.jobs]

    def job_states(self) -> list[tuple[Any, ...]]:
        """Each job's state after its runs, in JOB_STATE order, key last."""
        rows = []
        for job in self.jobs:
            last = job.last or (None, None, None)
            success = job.success or (None, None)
            checkpoint = json.dumps(job.checkpoint) if job.checkpoint is not None else None
            pointers = (last[0], last[1], last[2], success[1], success[0])
            strip = "".join(job.recent) or None
            rows.append((*pointers, job.fails, job.watermark, checkpoint, strip, job.key))
        return rows

    def tally_rows(self) -> list[tuple[Any, ...]]:
        return [(job, status, *values) for (job, status), values in sorted(self.tallies.items())]

    def shape(self, seconds: float) -> Shape:
        return Shape(
            anchor=END.isoformat(),
            runs=self.spec.runs,
            items=self.item_count,
            job_keys=[job.key for job in self.jobs],
            never_succeeded=_job_key(self.spec.jobs - 1),
            items_run=self.items_run,
            seconds=round(seconds, 1),
        )


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- SQLite -----------------------------------------------------------------------------


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    if value is True:
        return 1
    return value


def _sqlite_rows(rows: Iterator[tuple[Any, ...]] | list[tuple[Any, ...]]) -> Iterator[Any]:
    for row in rows:
        yield tuple(_sqlite_value(v) for v in row)


def _insert_sql(table: str, columns: list[str] | tuple[str, ...], mark: str) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(columns))})"


def _job_state_sql(mark: str) -> str:
    changes = ", ".join(f"{c} = {mark}" for c in JOB_STATE)
    return f'UPDATE jobs SET {changes} WHERE "key" = {mark}'


def generate_sqlite(spec: Spec) -> tuple[Path, Shape]:
    """The cached ledger file for ``spec`` (built on first use)."""
    path = DATA / f"ledger-{spec.key}.db"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, Shape(**json.loads(meta.read_text()))
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    began = time.monotonic()
    _migrate(f"sqlite:///{tmp}")
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    indexes = _drop_sqlite_indexes(conn)
    gen = _Generator(spec)
    conn.execute("BEGIN")
    conn.executemany(_insert_sql("jobs", JOB_COLUMNS, "?"), _sqlite_rows(gen.new_jobs()))
    for chunk in _chunks(gen.runs()):
        conn.executemany(_insert_sql("runs", RUN_COLUMNS, "?"), _sqlite_rows(chunk))
    conn.executemany(_insert_sql("run_items", ITEM_COLUMNS, "?"), _sqlite_rows(gen.items))
    conn.executemany(_insert_sql("run_labels", LABEL_COLUMNS, "?"), gen.labels())
    conn.executemany(_job_state_sql("?"), _sqlite_rows(gen.job_states()))
    conn.executemany(_insert_sql("job_tallies", TALLY_COLUMNS, "?"), gen.tally_rows())
    conn.execute("COMMIT")
    for sql in indexes:
        conn.execute(sql)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    shape = gen.shape(time.monotonic() - began)
    meta.write_text(json.dumps(asdict(shape)))
    tmp.rename(path)
    return path, shape


def _drop_sqlite_indexes(conn: sqlite3.Connection) -> list[str]:
    """Drop the secondary indexes of the big tables (rebuilt after the load,
    which is several times faster than maintaining them row by row)."""
    found = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('runs', 'run_items', 'run_labels')"
    ).fetchall()
    for name, _ in found:
        conn.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in found]


def copy_sqlite(path: Path, into: Path) -> Path:
    """A private copy of a cached ledger, for measures that change it."""
    shutil.copyfile(path, into)
    return into


# -- PostgreSQL ----------------------------------------------------------------------------


def generate_postgres(spec: Spec, url: str) -> Shape:
    """Load ``spec`` into the (migrated, empty) database at ``url`` by COPY."""
    import psycopg

    began = time.monotonic()
    gen = _Generator(spec)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        indexes = [
            row[0]
            for row in conn.execute(
                "SELECT indexdef FROM pg_indexes "
                "WHERE tablename IN ('runs', 'run_items', 'run_labels') "
                "AND indexname LIKE 'ix\\_%'"
            )
        ]
        conn.execute(
            "DROP INDEX " + ", ".join(d.split(" INDEX ", 1)[1].split(" ON ")[0] for d in indexes)
        )
        _copy(conn, "jobs", JOB_COLUMNS, iter(gen.new_jobs()))
        _copy(conn, "runs", RUN_COLUMNS, gen.runs())
        _copy(conn, "run_items", ITEM_COLUMNS, iter(gen.items))
        _copy(conn, "run_labels", LABEL_COLUMNS, gen.labels())
        with conn.cursor() as cur:
            cur.executemany(_job_state_sql("%s"), gen.job_states())
        _copy(conn, "job_tallies", TALLY_COLUMNS, iter(gen.tally_rows()))
        # The runs were given their ids; new runs continue after them.
        conn.execute("SELECT setval(pg_get_serial_sequence('runs', 'id'), %s)", (spec.runs,))
        for sql in indexes:
            conn.execute(sql)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return gen.shape(time.monotonic() - began)


def _copy(conn: Any, table: str, columns: Any, rows: Iterator[tuple[Any, ...]]) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _migrate(url: str) -> None:
    from runtrack.store import dialects

    engine = dialects.make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
