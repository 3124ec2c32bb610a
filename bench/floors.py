"""The raw floors: the same rows written by the bare driver, no library.

A floor connection writes to a database migrated with runtrack's schema, so
it pays for the same indexes, unique constraints and foreign keys; only what
runtrack adds on top (transactions around its statements, the job and tally
updates, SQLAlchemy, validation) is left out.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from typing import Any

from runtrack.clock import SystemClock

__all__ = ["PostgresFloor", "SqliteFloor"]

_START_COLUMNS = [
    "uid",
    "job_key",
    "provider",
    "status",
    "lease_key",
    "attempt",
    "triggered_by",
    "host",
    "pid",
    "worker_id",
    "created_at",
    "started_at",
    "heartbeat_at",
    "counters",
    "progress_done",
    "window_end",
    "moves_watermark",
    "items_success",
    "items_not_found",
    "items_skipped",
    "items_error",
]
_FINISH = (
    "UPDATE runs SET status = {p}, finished_at = {p}, counters = {p}, progress_total = {p}, "
    "progress_done = {p}, items_success = {p}, items_not_found = {p}, items_skipped = {p}, "
    "items_error = {p}, lease_key = NULL WHERE id = {p}"
)
_ITEM_COLUMNS = ("run_id", "key", "status", "recorded_at")
FLOOR_JOB = "bench:floor"


def _start_sql(placeholder: str, returning: str = "") -> str:
    marks = ", ".join([placeholder] * len(_START_COLUMNS))
    return f"INSERT INTO runs ({', '.join(_START_COLUMNS)}) VALUES ({marks}){returning}"


def _start_values(job: str, now: Any, counters: Any, moves: Any) -> list[Any]:
    host = socket.gethostname()
    worker = f"{host}:{os.getpid()}"
    values = [None, job, None, "running", f"{job}#0", 1, "system", host, os.getpid(), worker]
    return [*values, now, now, now, counters, 0, now, moves, 0, 0, 0, 0]


class SqliteFloor:
    """stdlib ``sqlite3`` in autocommit mode, WAL, ``synchronous=NORMAL`` (the
    settings runtrack uses), one INSERT and one UPDATE per run."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.conn.execute(f"PRAGMA {pragma}")
        now = SystemClock().now().strftime("%Y-%m-%d %H:%M:%S.%f")
        self.now = now
        self.conn.execute(
            "INSERT OR IGNORE INTO jobs (key, created_at, consecutive_failures) VALUES (?, ?, 0)",
            (FLOOR_JOB, now),
        )
        self._start = _start_sql("?")
        self._values = _start_values(FLOOR_JOB, now, "{}", 1)
        self._finish = _FINISH.format(p="?")
        self._counters = json.dumps({"fetched": 25, "upserted": 25, "skipped": 1})

    def run(self) -> None:
        values = self._values
        values[0] = str(uuid.uuid4())
        run_id = self.conn.execute(self._start, values).lastrowid
        finish = ("success", self.now, self._counters, None, 0, 0, 0, 0, 0, run_id)
        self.conn.execute(self._finish, finish)

    def items(self, keys: list[str]) -> None:
        """One run's items: executemany in one transaction."""
        values = self._values
        values[0] = str(uuid.uuid4())
        run_id = self.conn.execute(self._start, values).lastrowid
        rows = [(run_id, key, "success", self.now) for key in keys]
        marks = ", ".join("?" * len(_ITEM_COLUMNS))
        self.conn.execute("BEGIN")
        self.conn.executemany(
            f"INSERT INTO run_items ({', '.join(_ITEM_COLUMNS)}) VALUES ({marks})", rows
        )
        self.conn.execute("COMMIT")
        self.conn.execute(self._finish, ("success", self.now, "{}", None, 0, 0, 0, 0, 0, run_id))

    def close(self) -> None:
        self.conn.close()


class PostgresFloor:
    """psycopg 3 in autocommit mode: INSERT ... RETURNING id, then UPDATE; items
    by COPY."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        self.conn.autocommit = True
        self.now = SystemClock().now().replace(tzinfo=None)
        self.conn.execute(
            "INSERT INTO jobs (key, created_at, consecutive_failures) VALUES (%s, %s, 0) "
            "ON CONFLICT DO NOTHING",
            (FLOOR_JOB, self.now),
        )
        self._start = _start_sql("%s", " RETURNING id")
        self._values = _start_values(FLOOR_JOB, self.now, "{}", True)
        self._finish = _FINISH.format(p="%s")
        self._counters = json.dumps({"fetched": 25, "upserted": 25, "skipped": 1})

    def _insert_run(self) -> int:
        values = self._values
        values[0] = str(uuid.uuid4())
        row = self.conn.execute(self._start, values).fetchone()
        assert row is not None
        return int(row[0])

    def run(self) -> None:
        run_id = self._insert_run()
        finish = ("success", self.now, self._counters, None, 0, 0, 0, 0, 0, run_id)
        self.conn.execute(self._finish, finish)

    def items(self, keys: list[str]) -> None:
        """One run's items: one COPY in one transaction."""
        run_id = self._insert_run()
        now = self.now
        with self.conn.transaction(), self.conn.cursor() as cur:
            copy_sql = f"COPY run_items ({', '.join(_ITEM_COLUMNS)}) FROM STDIN"
            with cur.copy(copy_sql) as copy:
                for key in keys:
                    copy.write_row((run_id, key, "success", now))
        finish = ("success", now, "{}", None, 0, 0, 0, 0, 0, run_id)
        self.conn.execute(self._finish, finish)

    def close(self) -> None:
        self.conn.close()
