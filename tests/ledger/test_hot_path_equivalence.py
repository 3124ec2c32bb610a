"""The hot path's fence: every statement the store runs on the driver's own
connection (store/prepared.py) writes what ``Connection.execute`` writes.

A workload of runs goes through the public API on database A, hot path and
all. Every statement is mirrored on a second, empty database B of the same
backend, in the same transactions: the hot path's through SQLAlchemy's
``Connection.execute`` with the very parameters the store passed, the
others (already SQLAlchemy's) as they were. After each hot transaction the
two databases must hold the same rows, compared as the driver returns them
(the stored text of a JSON or a SQLite timestamp, Python types included);
the rows, row counts and new keys the hot path returned must be those
SQLAlchemy returned. A bind processor skipped, a value converted twice or a
column left to the wrong default shows up as a difference.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert, Update, UpdateBase

from runtrack import ItemStatus, Ledger, ManualClock, RunStatus, Volume
from runtrack.store import dialects, migrate
from runtrack.store.prepared import RawConnection
from runtrack.store.queue import CLAIM_RETURNING
from runtrack.store.schema import metadata

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
#: Values that a careless conversion would change: unicode beyond the BMP,
#: quotes, integers past 2**53 and 2**63 - 1, floats, nested NULLs and empties.
PARAMS = {
    "q": "café ☕ naïve 𝄞 — 東京",
    "quote": 'it\'s "quoted" \\ back\nslash',
    "ids": [2**53 + 1, -(2**62), 0, 2**63 - 1],
    "nested": {"ok": True, "none": None, "ratio": 0.1, "empty": {}, "list": []},
}


def typed(value: Any) -> Any:
    """``value`` with the type of every part spelled out, so that 1 and 1.0,
    "1" and 1, a naive and an aware datetime are different."""
    if isinstance(value, dict):
        return ("dict", tuple((k, typed(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(typed(v) for v in value))
    if isinstance(value, datetime):
        return ("datetime", value.isoformat())
    return (type(value).__name__, value)


def snapshot(engine: sa.Engine) -> dict[str, list[Any]]:
    """Every row of every runtrack table, as the driver returns it."""
    found: dict[str, list[Any]] = {}
    with engine.connect() as conn:
        quote = conn.dialect.identifier_preparer.quote
        for table in metadata.sorted_tables:
            order = ", ".join(quote(c.name) for c in table.primary_key.columns or table.columns)
            rows = conn.exec_driver_sql(f"SELECT * FROM {quote(table.name)} ORDER BY {order}")
            names = list(rows.keys())
            found[table.name] = [typed(dict(zip(names, row, strict=True))) for row in rows]
    return found


def differences(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> list[str]:
    """Each cell where the hot path's database differs from SQLAlchemy's."""
    out = []
    for table in a:
        if len(a[table]) != len(b[table]):
            out.append(f"{table}: {len(a[table])} rows by the hot path, {len(b[table])} else")
            continue
        for ours, theirs in zip(a[table], b[table], strict=True):
            for (column, mine), (_, other) in zip(ours[1], theirs[1], strict=True):
                if mine != other:
                    out.append(f"{table}.{column}: hot path {mine}, SQLAlchemy {other}")
    return out


@dataclass
class Mirror:
    """Replays the statements of engine A on engine B (see the module doc)."""

    a: sa.Engine
    b: sa.Engine
    #: A's SQLAlchemy transactions: their writes, replayed on B at commit.
    pending: dict[Any, list[tuple[ClauseElement, Any]]] = field(default_factory=dict)
    savepoints: dict[Any, list[int]] = field(default_factory=dict)
    #: Each hot-path connection's mirror on B, and its open transaction.
    mirrors: dict[int, tuple[Connection, Any]] = field(default_factory=dict)
    #: Each hot statement: (stmt, params, the hot path's result, SQLAlchemy's).
    executed: list[tuple[ClauseElement, Any, Any, Any]] = field(default_factory=list)
    snapshots: int = 0
    failures: list[str] = field(default_factory=list)

    # -- SQLAlchemy's own statements on A: replayed as they are ----------------

    def listen(self) -> None:
        event.listen(self.a, "before_execute", self._sa_statement)
        event.listen(self.a, "commit", self._sa_commit)
        event.listen(self.a, "rollback", self._sa_rollback)
        event.listen(self.a, "savepoint", self._sa_savepoint)
        event.listen(self.a, "rollback_savepoint", self._sa_rollback_savepoint)

    def _sa_statement(
        self, conn: Connection, stmt: Any, multi: Any, params: Any, _options: Any
    ) -> None:
        if isinstance(stmt, UpdateBase):
            values = multi or params or None
            self.pending.setdefault(conn, []).append((stmt, copy.deepcopy(values)))

    def _sa_commit(self, conn: Connection) -> None:
        writes = self.pending.pop(conn, [])
        self.savepoints.pop(conn, None)
        if writes:
            with self.b.begin() as b:
                for stmt, values in writes:
                    b.execute(stmt, values)

    def _sa_rollback(self, conn: Connection) -> None:
        self.pending.pop(conn, None)
        self.savepoints.pop(conn, None)

    def _sa_savepoint(self, conn: Connection, _name: str) -> None:
        self.savepoints.setdefault(conn, []).append(len(self.pending.get(conn, [])))

    def _sa_rollback_savepoint(self, conn: Connection, _name: str, _context: Any) -> None:
        marks = self.savepoints.get(conn)
        if marks:
            del self.pending.setdefault(conn, [])[marks.pop() :]

    # -- the hot path on A: each statement again through Connection.execute ----

    def spy(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("begin", "execute", "begin_nested", "commit", "rollback", "close"):
            original = getattr(RawConnection, name)
            monkeypatch.setattr(RawConnection, name, getattr(self, f"_raw_{name}")(original))

    def _raw_begin(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def begin(raw: RawConnection) -> None:
            original(raw)
            b = self.b.connect()
            b.execution_options(**{dialects.IMMEDIATE: True})
            self.mirrors[id(raw)] = (b, b.begin())

        return begin

    def _raw_execute(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def execute(raw: RawConnection, stmt: ClauseElement, params: Any = None) -> Any:
            sent = copy.deepcopy(params)  # as given: the hot path must not change them
            try:
                result = original(raw, stmt, params)
            except sa.exc.DBAPIError as exc:
                self._expect_failure(raw, stmt, sent, exc)
                raise
            mirrored = self.mirrors.get(id(raw))
            if mirrored is None:  # a statement that commits by itself
                with self.b.begin() as b:
                    theirs = _outcome(b.execute(stmt, sent), stmt, sent)
                self.executed.append((stmt, sent, result, theirs))
                self.compare()
            else:
                theirs = _outcome(mirrored[0].execute(stmt, sent), stmt, sent)
                self.executed.append((stmt, sent, result, theirs))
            return result

        return execute

    def _expect_failure(
        self, raw: RawConnection, stmt: ClauseElement, params: Any, exc: Exception
    ) -> None:
        mirrored = self.mirrors.get(id(raw))
        try:
            if mirrored is None:
                with self.b.begin() as b:
                    b.execute(stmt, params)
            else:
                mirrored[0].execute(stmt, params)
        except sa.exc.DBAPIError as theirs:
            if type(theirs) is not type(exc):
                self.failures.append(f"{stmt}: hot path raised {exc!r}, SQLAlchemy {theirs!r}")
            return
        self.failures.append(f"{stmt}: hot path raised {exc!r}, SQLAlchemy did not")

    def _raw_begin_nested(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        @contextmanager
        def begin_nested(raw: RawConnection) -> Iterator[None]:
            savepoint = self.mirrors[id(raw)][0].begin_nested()
            try:
                with original(raw):
                    yield
            except BaseException:
                savepoint.rollback()
                raise
            savepoint.commit()

        return begin_nested

    def _raw_commit(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def commit(raw: RawConnection) -> None:
            original(raw)
            b, transaction = self.mirrors.pop(id(raw))
            transaction.commit()
            b.close()
            self.compare()

        return commit

    def _raw_rollback(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def rollback(raw: RawConnection) -> None:
            original(raw)
            found = self.mirrors.pop(id(raw), None)
            if found is not None:
                found[1].rollback()
                found[0].close()

        return rollback

    def _raw_close(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def close(raw: RawConnection) -> None:
            original(raw)
            found = self.mirrors.pop(id(raw), None)
            if found is not None:  # never committed: nothing of it stays
                found[0].close()

        return close

    # -- the comparison ------------------------------------------------------

    def compare(self) -> None:
        self.snapshots += 1
        found = differences(snapshot(self.a), snapshot(self.b))
        if found:
            self.failures.append(f"after hot transaction {self.snapshots}:\n" + "\n".join(found))

    def results(self) -> list[str]:
        """Where the hot path returned other rows, counts or keys than
        SQLAlchemy (read once the workload is over: a pipelined block fills
        its results when it ends)."""
        out = []
        for stmt, params, ours, theirs in self.executed:
            mine = _outcome(ours, stmt, params)
            if mine != theirs:
                out.append(f"{stmt}\n  hot path:   {mine}\n  SQLAlchemy: {theirs}")
        return out


def _outcome(result: Any, stmt: ClauseElement, params: Any) -> Any:
    """What the store may read of a result: its rows, an UPDATE's row count
    (an INSERT's is -1 through SQLAlchemy where it returns rows), and the key
    of one new row where the database picks it."""
    rows = result.all() if _returns_rows(result) else []
    found: dict[str, Any] = {"rows": typed([tuple(row) for row in rows])}
    if not isinstance(params, list):
        if isinstance(stmt, Update):
            found["rowcount"] = result.rowcount
        if isinstance(stmt, Insert) and stmt.select is None and _new_key(stmt):
            found["key"] = typed(tuple(result.inserted_primary_key or ()))
    return found


def _new_key(stmt: Insert) -> bool:
    """Whether the database picks the inserted row's key (what the store
    reads of ``inserted_primary_key``)."""
    return isinstance(stmt.table, sa.Table) and stmt.table.autoincrement_column is not None


def _returns_rows(result: Any) -> bool:
    if isinstance(result, sa.CursorResult):
        return bool(result.returns_rows)
    return True  # the hot path's result: its rows fetched at once (maybe none)


@pytest.fixture
def pair(
    backend: str, servers: Any, shadow_servers: Any, tmp_path: Any
) -> Iterator[tuple[str, str]]:
    """Two migrated, empty databases of ``backend`` whose keys start at 1."""
    if backend == "sqlite":
        urls = (f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db")
        for url in urls:
            engine = dialects.make_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
    else:
        urls = (servers.url(backend), shadow_servers.url(backend))
        for url in urls:
            restart(url, backend)
    yield urls
    if backend != "sqlite":
        for url in urls:
            restart(url, backend)  # the next tests expect empty tables


def restart(url: str, backend: str) -> None:
    """Empty every table and restart its keys at 1 (the ledger's tests share
    a database, whose sequences have moved on)."""
    engine = sa.create_engine(dialects.normalize_url(url), poolclass=sa.NullPool)
    names = [table.name for table in metadata.sorted_tables]
    with engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        if backend == "postgresql":
            listed = ", ".join(quote(name) for name in names)
            conn.exec_driver_sql(f"TRUNCATE TABLE {listed} RESTART IDENTITY CASCADE")
        else:
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            for name in names:
                conn.exec_driver_sql(f"TRUNCATE TABLE {quote(name)}")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    engine.dispose()


def workload(ledger: Ledger, small: Ledger, clock: ManualClock) -> None:
    """Runs that take every hot statement: both forms of a start (one
    statement; a transaction reading the job, the resumed checkpoint and
    claiming a second lease slot under a savepoint), items one by one and in
    bulk, fenced item flushes of one run and of several, finalizations to
    every terminal status with counters, errors and the last items, and a
    job whose volume is guarded."""
    tick = timedelta(seconds=1, microseconds=234567)
    with ledger.run("eq:plain", provider="prov-ü", params=PARAMS, triggered_by="zoë") as run:
        run.count("pages", 3)
        run.count("big", 2**62)
        run.count("ratio", 0.25)
        run.set_total(10)
        run.advance(7)
        run.item("k-1", "success", group="g-é", source="src", data={"price": 1.5, "n": 2**60})
        run.item("k-2 ☃", ItemStatus.NOT_FOUND)
        run.item("k-3", "skipped", data=["x", None, {"y": []}])
        run.note("a note — ✓")
        run.save_checkpoint({"v": 1, "cursor": "ß", "n": 2**40})
        clock.advance(tick)
    clock.advance(tick)
    # Failed, with a checkpoint the next run over the same window resumes.
    with pytest.raises(RuntimeError), ledger.run("eq:resume", params={"none": None}) as run:
        run.save_checkpoint({"page": 7})
        run.item("bad", "error", error="HTTP 502 — ✗")
        raise RuntimeError("boom ✗")
    clock.advance(tick)
    with ledger.run("eq:resume") as run:
        run.error("one page failed", page=3, detail={"é": [1, 2.5, None]})
        run.item("again", "success")
    clock.advance(tick)
    # A retry (read in a transaction), a fixed window end, an explicit window.
    with ledger.run("eq:resume", retry_of=run.id, attempt=2) as retried:
        retried.count("pages")
    clock.advance(tick)
    end = clock.now() - timedelta(microseconds=1)
    with ledger.run("eq:window", window_end=end, on_partial="hold") as run:
        run.set_counter("gauge", -5)
    with ledger.run("eq:window", window_start=T0 - timedelta(days=1), window_end=T0) as run:
        run.item("w", "success", data=None)
    clock.advance(tick)
    # A labelled start: its labels go in the start's transaction (issue 16).
    with ledger.run("eq:labels", labels={"team": "grøwth ✓", "k8s.io/app": "x" * 200}) as run:
        run.count("pages")
    clock.advance(tick)
    # Two runs of one job: the second takes the next lease slot.
    first = ledger.start_run("eq:pair", concurrency=2, params={"slot": 1})
    second = ledger.start_run("eq:pair", concurrency=2, params={"slot": 2})
    # Items flushed mid-run (batches of 5), of one run and then of both.
    for i in range(12):
        first.item(f"f-{i}", "success" if i % 3 else "not_found", data={"i": i})
    second.item("s-1", "error", error="x" * 3000)
    first.item("f-last", "success")
    ledger._heartbeat.tick()  # flushes both runs' buffers in one fenced write
    clock.advance(tick)
    ledger.finish_run(first, "failed", error="gave up", error_details={"code": 2**63 - 1})
    ledger.finish_run(second, "cancelled", counters={"left": 0.5})
    clock.advance(tick)
    # Many items at once: the bulk forms (COPY, multi-row VALUES, executemany).
    with small.run("eq:bulk", params=PARAMS) as run:
        for i in range(260):
            data = None if i % 4 == 0 else {"i": i, "s": "ü" * (i % 7), "f": i / 7}
            run.item(f"bulk-{i:03d}", "success" if i % 5 else "skipped", data=data)
    clock.advance(tick)
    pending = ledger.create_run("eq:queued", params={"queued": True})
    queued = ledger.start_run(run_id=pending.id)
    queued.item("q", "success")
    ledger.finish_run(queued, RunStatus.SUCCESS)
    clock.advance(tick)
    # A trigger claimed from the queue (PostgreSQL: the claim's statements
    # pipelined, its update in a savepoint and COMMIT in one round trip),
    # then one that resumes the checkpoint of the failed run before it.
    triggered = ledger.trigger("eq:queued", params={"by": "trigger ✓"}, by="user:zoë")
    claimed = ledger.claim({"eq:queued": 2})
    assert claimed is not None and claimed.id == triggered.id
    claimed.save_checkpoint({"page": "ü"})
    ledger.finish_run(claimed, RunStatus.FAILED, error="failed ✗")
    clock.advance(tick)
    ledger.trigger("eq:queued", by="user:zoë")
    resumed = ledger.claim({"eq:queued": 2, "eq:absent": 1})
    assert resumed is not None and resumed.resume_checkpoint == {"page": "ü"}
    ledger.finish_run(resumed, RunStatus.SUCCESS)
    clock.advance(tick)
    # A guarded job: its start returns the volume history, its job update
    # writes the new one, and the anomaly, then none (SQL NULL, not JSON null).
    ledger.expect("eq:guarded", volume={"offers": Volume(min_ratio=0.5, min_history=1)})
    ended = []
    for offers in (1000, 10, 990):
        with ledger.run("eq:guarded") as run:
            run.count("offers", offers)
        ended.append(ledger.get_run(run.id).status.value)
        clock.advance(tick)
    assert ended == ["success", "partial", "success"]
    assert ledger.check().open == []  # the anomaly was cleared by the last run


def kinds(executed: list[tuple[ClauseElement, Any, Any, Any]]) -> set[str]:
    """What the hot statements were: verb, table, and one row or many."""
    found = set()
    for stmt, params, *_ in executed:
        many = "many" if isinstance(params, list) else "one"
        if isinstance(stmt, UpdateBase):
            verb = type(stmt).__name__.lower()
            found.add(f"{verb} {stmt.table.name} {many}")  # type: ignore[attr-defined]
        else:
            found.add(f"select {many}")
    return found


def test_the_hot_path_writes_what_connection_execute_writes(
    pair: tuple[str, str], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url_a, url_b = pair
    engine_a, engine_b = dialects.make_engine(url_a), dialects.make_engine(url_b)
    mirror = Mirror(engine_a, engine_b)
    mirror.listen()
    mirror.spy(monkeypatch)
    clock = ManualClock(T0)
    options: dict[str, Any] = {"engine": engine_a, "clock": clock, "migrate": False}
    try:
        with (
            Ledger(**options, heartbeat_interval=3600, item_batch_size=5) as ledger,
            Ledger(**options, heartbeat_interval=3600, item_batch_size=1000) as small,
        ):
            workload(ledger, small, clock)
        assert mirror.failures == []
        assert mirror.results() == []
        assert differences(snapshot(engine_a), snapshot(engine_b)) == []
    finally:
        engine_a.dispose()
        engine_b.dispose()
    # Every kind of hot statement was taken (not only what a short run takes).
    taken = kinds(mirror.executed)
    assert {
        "insert runs one",
        "insert run_items many",
        "insert run_labels many",
        "update runs one",
        "update jobs one",
        "insert job_tallies one",
        "select one",
    } <= taken, taken
    assert mirror.snapshots >= 15
    # PostgreSQL claims on the hot path: their update was mirrored too.
    claims = [stmt for stmt, *_ in mirror.executed if stmt is CLAIM_RETURNING]
    assert len(claims) == (2 if backend == "postgresql" else 0)
