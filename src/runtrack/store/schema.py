"""The tables, in SQLAlchemy Core. The Alembic migrations must agree with this
(``tests/migrations`` proves it on every database)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

__all__ = [
    "DURATION_BOUNDS",
    "RECENT_CHARS",
    "STRIP_LENGTH",
    "job_tallies",
    "jobs",
    "maintenance",
    "metadata",
    "provider_pauses",
    "run_items",
    "runs",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# Microsecond timestamps everywhere: MySQL/MariaDB DATETIME defaults to whole
# seconds, which would make heartbeats and windows collide. All values are
# naive UTC; the store converts at its edge.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

KEY = 255  # job keys, providers, users: indexable on MariaDB utf8mb4
#: Room for a job's status strip: 30 cells of at most 52 characters.
STRIP_LENGTH = 30
RECENT_CHARS = 1600

jobs = Table(
    "jobs",
    metadata,
    Column("key", String(KEY), primary_key=True),
    Column("provider", String(KEY)),
    Column("created_at", Timestamp, nullable=False),
    Column("last_run_id", Id),
    Column("last_status", String(16)),
    Column("last_finished_at", Timestamp),
    Column("last_success_at", Timestamp),
    Column("last_success_run_id", Id),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("watermark", Timestamp),
    Column("checkpoint", JSON),
    # The runner's schedule claim: a runner owns a scheduled tick by moving
    # this forward with a conditional update, so many runners fire it once.
    Column("next_due_at", Timestamp),
    # The job's last finished runs, newest first, as the status strip shows
    # them: each finalization prepends its cell in the same UPDATE that moves
    # the last-run pointers, so the overview never reads the runs table (see
    # rows.strip_cell for the format).
    Column("recent_runs", String(RECENT_CHARS)),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Stable external id (OpenLineage run id) and the fencing token every
    # worker write carries.
    Column("uid", String(36), nullable=False, unique=True),
    Column("job_key", String(KEY), ForeignKey("jobs.key"), nullable=False),
    Column("provider", String(KEY)),
    Column("status", String(16), nullable=False),
    # The job lease: "<job>#<slot>" while active, NULL once terminal. A unique
    # index (NULLs never collide) makes "at most N active runs per job" a
    # database guarantee across processes and machines.
    Column("lease_key", String(KEY + 12), unique=True),
    Column("attempt", Integer, nullable=False, default=1),
    Column("retry_of", Id),
    Column("triggered_by", String(KEY), nullable=False),
    Column("params", JSON),
    Column("host", String(KEY)),
    Column("pid", Integer),
    Column("worker_id", String(KEY)),
    Column("created_at", Timestamp, nullable=False),
    Column("started_at", Timestamp),
    Column("finished_at", Timestamp),
    Column("heartbeat_at", Timestamp),
    Column("cancel_requested_at", Timestamp),
    Column("cancel_requested_by", String(KEY)),
    Column("cancel_reason", Text),
    Column("counters", JSON),
    Column("progress_total", BigInteger),
    Column("progress_done", BigInteger, nullable=False, default=0),
    Column("window_start", Timestamp),
    Column("window_end", Timestamp),
    Column("moves_watermark", Boolean, nullable=False, default=True),
    Column("checkpoint", JSON),
    Column("error_type", String(KEY)),
    Column("error_message", Text),
    Column("error_stack", LongText),
    Column("error_details", JSON),
    Column("notes", JSON),
    Column("items_success", Integer, nullable=False, default=0),
    Column("items_not_found", Integer, nullable=False, default=0),
    Column("items_skipped", Integer, nullable=False, default=0),
    Column("items_error", Integer, nullable=False, default=0),
    Column("groups_found", Integer),
    Column("groups_missing", Integer),
    Column("retry_policy", JSON),
    # Listings page by id (monotonic, unique): each filter's index ends in id
    # so that "filter + ORDER BY id DESC + id < cursor" is an index range scan.
    Index(None, "job_key", "id"),
    Index(None, "status", "id"),
    # A job's runs in one status: without it planners pick one of the two
    # above and walk either the job's whole history or every job's runs of
    # that status.
    Index(None, "job_key", "status", "id"),
    Index(None, "provider", "id"),
    Index(None, "triggered_by", "id"),
    # Runs of a status started since (the dashboard's failures of the day),
    # and the reaper's runs that never heartbeated.
    Index(None, "status", "started_at"),
    # The reaper: stale runs are a short range of this index.
    Index(None, "status", "heartbeat_at"),
    # Listings filtered by creation time. (Retention walks the primary key:
    # every index here is paid for by each run's insert and finalization, so
    # none is kept that no query uses; bench/ prints every query's plan.)
    Index(None, "created_at"),
)

run_items = Table(
    "run_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, ForeignKey("runs.id"), nullable=False),
    Column("key", String(512), nullable=False),
    Column("status", String(16), nullable=False),
    Column("group_key", String(KEY)),
    Column("source", String(KEY)),
    Column("data", JSON),
    Column("error", Text),
    Column("recorded_at", Timestamp, nullable=False),
    Index(None, "run_id", "id"),
    Index(None, "run_id", "status", "id"),
    Index(None, "run_id", "group_key", "id"),
)

provider_pauses = Table(
    "provider_pauses",
    metadata,
    Column("provider", String(KEY), primary_key=True),
    Column("paused_until", Timestamp, nullable=False),
    Column("reason", Text, nullable=False),
    Column("paused_at", Timestamp, nullable=False),
    Column("paused_by", String(KEY)),
)

# When each maintenance task (reap, prune) last ran, for /health and for
# spacing maintenance across many runner processes.
maintenance = Table(
    "maintenance",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("last_run_at", Timestamp, nullable=False),
    Column("details", JSON),
)

#: Upper bounds (seconds) of the run-duration histogram: ingestion runs last
#: from seconds to hours. Changing them needs a migration (one column each).
DURATION_BOUNDS: tuple[int, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400,
)  # fmt: skip

# Totals per job and terminal status, added to in the transaction that
# finalizes a run, so that metrics read a few rows per job instead of scanning
# runs, and retention (which deletes runs) never lowers a counter.
# le_<n> counts runs whose duration fell in (previous bound, n] seconds.
job_tallies = Table(
    "job_tallies",
    metadata,
    Column("job_key", String(KEY), ForeignKey("jobs.key"), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("runs", BigInteger, nullable=False),
    Column("items_success", BigInteger, nullable=False),
    Column("items_not_found", BigInteger, nullable=False),
    Column("items_skipped", BigInteger, nullable=False),
    Column("items_error", BigInteger, nullable=False),
    Column("duration_count", BigInteger, nullable=False),
    Column("duration_sum", Double, nullable=False),
    *(Column(f"le_{bound}", BigInteger, nullable=False) for bound in DURATION_BOUNDS),
)
