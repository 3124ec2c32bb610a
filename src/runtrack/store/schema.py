"""The tables, in SQLAlchemy Core. The Alembic migrations must agree with this
(``tests/migrations`` proves it on every database)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    text,
)

from runtrack.store.columns import ExactString, Id, LongText, Timestamp, metadata

__all__ = [
    "DURATION_BOUNDS",
    "RECENT_CHARS",
    "STRIP_LENGTH",
    "ExactString",
    "backfills",
    "carried",
    "deliveries",
    "expectations",
    "incidents",
    "job_tallies",
    "jobs",
    "maintenance",
    "metadata",
    "provider_limits",
    "provider_pauses",
    "revoked_sessions",
    "run_items",
    "run_labels",
    "runs",
    "workers",
]

KEY = 255  # job keys, providers, users: indexable on MariaDB utf8mb4
#: Room for a job's status strip: 30 cells of at most 52 characters.
STRIP_LENGTH = 30
RECENT_CHARS = 1600

jobs = Table(
    "jobs",
    metadata,
    Column("key", ExactString(KEY), primary_key=True),
    Column("provider", ExactString(KEY)),
    Column("created_at", Timestamp, nullable=False),
    Column("last_run_id", Id),
    Column("last_status", ExactString(16)),
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
    Column("recent_runs", ExactString(RECENT_CHARS)),
    # Issue 18: the last successful values of each guarded counter, newest
    # last ({"counter": [v, ...]}), so the volume guard reads no runs: read
    # by a guarded run's start, written by its finalization's job update.
    Column("volume_history", JSON(none_as_null=True)),
    # The last run's volume anomaly ({"run_id", "summary", "anomalies"}),
    # which the ``volume`` incident is about; NULL when it was in bounds.
    Column("volume_anomaly", JSON(none_as_null=True)),
    # Issue 17: the schedule the runners serving the job registered
    # ("cron '30 2 * * *' Europe/Madrid", "every 15m") and its IANA zone
    # (NULL: UTC), so pages show its next due time on that zone's clock.
    Column("schedule", ExactString(KEY)),
    Column("schedule_tz", ExactString(64)),
    # Issue 21: due ticks the runner claimed but skipped (the job's slots or
    # its provider's limit were taken), the last one's time and reason.
    Column("ticks_skipped", Integer, nullable=False, server_default=text("0")),
    Column("last_skipped_at", Timestamp),
    Column("last_skip_reason", ExactString(KEY)),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Stable external id (OpenLineage run id) and the fencing token every
    # worker write carries.
    Column("uid", ExactString(36), nullable=False, unique=True),
    Column("job_key", ExactString(KEY), ForeignKey("jobs.key"), nullable=False),
    Column("provider", ExactString(KEY)),
    Column("status", ExactString(16), nullable=False),
    # The job lease: "<job>#<slot>" while active, NULL once terminal. A unique
    # index (NULLs never collide) makes "at most N active runs per job" a
    # database guarantee across processes and machines.
    Column("lease_key", ExactString(KEY + 12), unique=True),
    Column("attempt", Integer, nullable=False, default=1),
    Column("retry_of", Id),
    Column("triggered_by", ExactString(KEY), nullable=False),
    Column("params", JSON),
    Column("host", ExactString(KEY)),
    Column("pid", Integer),
    Column("worker_id", ExactString(KEY)),
    Column("created_at", Timestamp, nullable=False),
    Column("started_at", Timestamp),
    Column("finished_at", Timestamp),
    Column("heartbeat_at", Timestamp),
    Column("cancel_requested_at", Timestamp),
    Column("cancel_requested_by", ExactString(KEY)),
    Column("cancel_reason", Text),
    Column("counters", JSON),
    Column("progress_total", BigInteger),
    Column("progress_done", BigInteger, nullable=False, default=0),
    Column("window_start", Timestamp),
    Column("window_end", Timestamp),
    Column("moves_watermark", Boolean, nullable=False, default=True),
    Column("checkpoint", JSON),
    Column("error_type", ExactString(KEY)),
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
    # A failed attempt whose retry the runner scheduled (NULL: not retried):
    # it does not count toward the job's failure streak.
    Column("retried", Boolean),
    # The job's partial policy and carry limit (NULL: "carry", 5), for the
    # finalizations that do not hold the run's handle (reaper, finish by id).
    Column("on_partial", ExactString(8)),
    Column("max_carry_attempts", Integer),
    # Issue 17: the run this one re-runs (same job, params and window), and
    # the queue's priority of a pending run (0 manual, 1 schedule, 2 backfill).
    Column("rerun_of", Id),
    Column("priority", Integer),
    # Issue 17: the backfill this run is a window of (runtrack.backfill).
    Column("backfill_id", Id),
    # The last carried entry id the run was handed as its job's only running
    # run: the owed entries up to it are its own while it runs (carry_handout).
    Column("carried_upto", Id),
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
    # Issue 17: the queue. A claim walks pending runs by priority, then age;
    # where the database has partial indexes only pending runs are in it, so
    # the runs of the hot path (never pending) do not pay for it.
    Index(
        "ix_runs_queue",
        "status",
        "priority",
        "id",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    # A backfill's progress, its resume and its max_parallel claim check read
    # its runs; partial where possible so runs outside backfills pay nothing.
    Index(
        "ix_runs_backfill",
        "backfill_id",
        "status",
        "id",
        postgresql_where=text("backfill_id IS NOT NULL"),
        sqlite_where=text("backfill_id IS NOT NULL"),
    ),
)

# Issue 17: a backfill, a set of queued runs whose fixed windows tile
# [range_start, range_end) in steps of step_seconds (the last one clipped).
backfills = Table(
    "backfills",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_key", ExactString(KEY), ForeignKey("jobs.key"), nullable=False),
    Column("range_start", Timestamp, nullable=False),
    Column("range_end", Timestamp, nullable=False),
    Column("step_seconds", Integer, nullable=False),
    Column("windows", Integer, nullable=False),
    Column("max_parallel", Integer),
    Column("triggered_by", ExactString(KEY), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("state", ExactString(16), nullable=False),  # active | cancelled
    Index(None, "job_key", "id"),
)

# Issue 17: "at most N running runs of this provider", shared by every worker.
provider_limits = Table(
    "provider_limits",
    metadata,
    Column("provider", ExactString(KEY), primary_key=True),
    Column("max_running", Integer, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

run_items = Table(
    "run_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, ForeignKey("runs.id"), nullable=False),
    Column("key", ExactString(512), nullable=False),
    Column("status", ExactString(16), nullable=False),
    Column("group_key", ExactString(KEY)),
    Column("source", ExactString(KEY)),
    Column("data", JSON),
    Column("error", Text),
    Column("recorded_at", Timestamp, nullable=False),
    Index(None, "run_id", "id"),
    Index(None, "run_id", "status", "id"),
    Index(None, "run_id", "group_key", "id"),
)

# A run's labels, written with its insert. The primary key reads one run's
# labels (a page's in one query); (key, value, run_id) makes a label filter
# with "ORDER BY id DESC LIMIT n" a backwards range of this index. Retention
# deletes a run's labels with it (ON DELETE CASCADE).
run_labels = Table(
    "run_labels",
    metadata,
    Column("run_id", Id, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", ExactString(63), primary_key=True),
    Column("value", ExactString(200), nullable=False),
    Index(None, "key", "value", "run_id"),
)

# What a job owes: items that failed and slices of windows that could not be
# fetched, carried to its next runs until they succeed (then deleted), or until
# they are given up (kept, never handed out again). See runtrack/carry.py.
carried = Table(
    "carried",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_key", ExactString(KEY), ForeignKey("jobs.key"), nullable=False),
    Column("kind", ExactString(8), nullable=False),  # item | slice
    Column("state", ExactString(16), nullable=False),  # owed | given_up
    Column("item_key", ExactString(512)),
    Column("group_key", ExactString(KEY)),
    Column("source", ExactString(KEY)),
    # SQL NULL for None (not JSON null): handing out 10,000 entries skips as
    # many JSON decodes.
    Column("data", JSON(none_as_null=True)),
    Column("slice_start", Timestamp),
    Column("slice_end", Timestamp),
    Column("last_error", Text),  # an item's last error, a slice's reason
    Column("attempts", Integer, nullable=False),
    Column("first_run_id", Id, nullable=False),
    Column("last_run_id", Id, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # The run the entry is handed to while it runs (NULL: free; a run no
    # longer running holds nothing): one run at a time per entry.
    Column("handed_to_run_id", Id),
    # A job's owed entries, oldest first: what a run is handed.
    Index(None, "job_key", "state", "id"),
    # Retention keeps the runs entries came from.
    Index(None, "first_run_id"),
)

# Issue 18: what each job promises, read by every checking process.
expectations = Table(
    "expectations",
    metadata,
    Column("job_key", ExactString(KEY), ForeignKey("jobs.key"), primary_key=True),
    Column("success_within", Double),  # seconds
    Column("max_failures", Integer),
    Column("volume", JSON),  # {"counter": {"min_ratio": .., "max_ratio": .., ...}}
    Column("required", JSON),  # ["counter", ...]
    Column("remind_every", Double),  # seconds
    # "explicit" (ledger.expect, Expect(...)) or "default" (a runner's default):
    # a default never replaces an explicit expectation.
    Column("origin", ExactString(16), nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# An expectation broken: opened once, resolved once, however many processes
# check. ``open_key`` is "<kind>:<job>" while open and NULL once resolved: its
# unique index (NULLs never collide) lets one insert win.
incidents = Table(
    "incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_key", ExactString(KEY), ForeignKey("jobs.key"), nullable=False),
    Column("kind", ExactString(16), nullable=False),  # late | failing | volume | given_up
    Column("open_key", ExactString(KEY + 20), unique=True),
    Column("opened_at", Timestamp, nullable=False),
    Column("resolved_at", Timestamp),
    Column("reminded_at", Timestamp),
    Column("run_id", Id),  # the run that broke it, if one did
    Column("details", JSON),
    Index(None, "job_key", "id"),
)

# One notification of one incident transition to one sink: written in the
# transaction of the transition (so none is lost), sent after it by any
# process, retried with backoff until ``give_up_at``.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", Id, ForeignKey("incidents.id"), nullable=False),
    Column("event", ExactString(16), nullable=False),  # opened | resolved | reminder
    Column("sink", Text, nullable=False),
    Column("idempotency_key", ExactString(64), nullable=False, unique=True),
    Column("state", ExactString(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("next_at", Timestamp, nullable=False),
    Column("give_up_at", Timestamp, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("delivered_at", Timestamp),
    Column("payload", JSON, nullable=False),
    Index(None, "state", "next_at"),
    Index(None, "incident_id"),
)

provider_pauses = Table(
    "provider_pauses",
    metadata,
    Column("provider", ExactString(KEY), primary_key=True),
    Column("paused_until", Timestamp, nullable=False),
    Column("reason", Text, nullable=False),
    Column("paused_at", Timestamp, nullable=False),
    Column("paused_by", ExactString(KEY)),
)

# When each maintenance task (reap, prune) last ran, for /health and for
# spacing maintenance across many runner processes.
maintenance = Table(
    "maintenance",
    metadata,
    Column("task", ExactString(64), primary_key=True),
    Column("last_run_at", Timestamp, nullable=False),
    Column("details", JSON),
)

# Dashboard sessions ended by "sign out" before their cookie expires: the
# cookie is stateless (signed), so revoking it needs a shared list that every
# server process reads. A row is useless after ``expires_at`` and is deleted
# by the next sign-out.
revoked_sessions = Table(
    "revoked_sessions",
    metadata,
    Column("nonce", ExactString(64), primary_key=True),
    Column("expires_at", Timestamp, nullable=False),
    Index(None, "expires_at"),
)

# Issue 17: each runner process, registered when it starts and heartbeating
# while it lives (``last_seen_at``); ``stopped_at`` is set by a graceful stop.
# A row not seen for ``stale_after`` is a dead worker; retention deletes rows
# gone for days. What a worker runs is ``runs.worker_id``.
workers = Table(
    "workers",
    metadata,
    Column("id", ExactString(KEY), primary_key=True),
    Column("host", ExactString(KEY), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", ExactString(64), nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("jobs", JSON, nullable=False),  # [{"key", "schedule", "tz"}, ...]
    Column("started_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("stopped_at", Timestamp),
    Index(None, "last_seen_at"),
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
    Column("job_key", ExactString(KEY), ForeignKey("jobs.key"), primary_key=True),
    Column("status", ExactString(16), primary_key=True),
    Column("runs", BigInteger, nullable=False),
    Column("items_success", BigInteger, nullable=False),
    Column("items_not_found", BigInteger, nullable=False),
    Column("items_skipped", BigInteger, nullable=False),
    Column("items_error", BigInteger, nullable=False),
    Column("duration_count", BigInteger, nullable=False),
    Column("duration_sum", Double, nullable=False),
    *(Column(f"le_{bound}", BigInteger, nullable=False) for bound in DURATION_BOUNDS),
)
