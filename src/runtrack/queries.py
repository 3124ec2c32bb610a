"""Reading the ledger: runs, items, jobs, providers, health.

Every query validates its input and calls the store; listings page by keyset
(opaque cursors), never by OFFSET, except the page numbers the API offers.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar, Unpack

from runtrack import inputs
from runtrack.clock import Clock
from runtrack.errors import (
    InvalidCursor,
    InvalidInput,
    JobNotFound,
    RunNotFound,
)
from runtrack.filters import RunFilters, run_filter
from runtrack.models import (
    Carried,
    GroupSummary,
    ItemRecord,
    ItemStatus,
    JobRecord,
    JobState,
    JobTally,
    NumberedPage,
    Page,
    ProviderState,
    RunBrief,
    RunOutcome,
    RunRecord,
    RunStatus,
)
from runtrack.overview import Health, Overview
from runtrack.store.carry_handout import CarryStore
from runtrack.store.history import HistoryStore
from runtrack.store.jobs import JobStore
from runtrack.store.runs import RunStore
from runtrack.store.sql import RunFilter

log = logging.getLogger("runtrack")

MAX_PAGE = 1000
MAX_SKIP_REASON = 255  # jobs.last_skip_reason
#: Runs reachable by page number (see :meth:`Queries.list_runs_by_page`), as
#: search engines bound theirs: the cursor pages any depth at the same cost.
PAGE_WINDOW = 10_000


class Queries:
    """The ledger's read side (and the runner's claims on job rows)."""

    def __init__(
        self,
        runs: RunStore,
        jobs: JobStore,
        history: HistoryStore,
        carry: CarryStore,
        clock: Clock,
        stale_after: timedelta,
        overview: Overview,
    ) -> None:
        self._runs = runs
        self._jobs = jobs
        self._history = history
        self._carry = carry
        self.clock = clock
        self.stale_after = stale_after
        self.overview = overview
        #: Jobs whose row this process made sure of (a run start skips that write).
        self.known_jobs: set[str] = set()

    def get_run(self, run_id: int) -> RunRecord:
        """The run with this id, or :class:`RunNotFound`."""
        inputs.positive_int("run_id", run_id)
        record = self._runs.get_run(run_id)
        if record is None:
            raise RunNotFound(run_id)
        return record

    def list_runs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        **filters: Unpack[RunFilters],
    ) -> Page[RunRecord]:
        """Runs newest first, one page at a time (keyset pagination:
        pass ``next_cursor`` back as ``cursor``), narrowed by
        :class:`~runtrack.filters.RunFilters`."""
        checked = run_filter(("limit", "cursor"), **filters)
        inputs.positive_int("limit", limit, limit=MAX_PAGE)
        before = decode_cursor(cursor)
        return _page(self._runs.list_runs(checked, limit + 1, before), limit)

    def run_filter(self, /, **filters: Unpack[RunFilters]) -> RunFilter:
        """Validate listing filters (shared by the listing and the counts)."""
        return run_filter(**filters)

    def count_runs(self, /, **filters: Unpack[RunFilters]) -> int:
        """How many runs match the filters of :meth:`list_runs`."""
        return self._runs.count_runs(run_filter(**filters))

    def recent_runs(self, limit: int = 10) -> list[RunRecord]:
        return self.list_runs(limit=limit).items

    def last_successful_run(self, job: str) -> RunRecord | None:
        """The job's latest run that ended ``success`` (``None`` if none did)."""
        state = self._jobs.get_job(inputs.key("job", job))
        if state is None or state.last_success_run_id is None:
            return None
        return self._runs.get_run(state.last_success_run_id)

    def active_runs(self, job: str | None = None) -> list[RunRecord]:
        return self._runs.active_runs(inputs.key("job", job, optional=True))

    def recent_runs_of_jobs(
        self, jobs: Sequence[str], *, limit: int = 30
    ) -> dict[str, list[RunBrief]]:
        """Each job's last ``limit`` runs in outline, newest first (status
        strips, charts). The cost follows ``len(jobs) * limit``, not the table."""
        keys = inputs.keys("jobs", jobs)
        inputs.positive_int("limit", limit, limit=MAX_PAGE)
        return self._runs.recent_runs_of_jobs(keys, limit)

    def recent_outcomes(self, jobs: Sequence[str] | None = None) -> dict[str, list[RunOutcome]]:
        """Each job's last 30 finished runs (all jobs, or ``jobs``), newest to
        finish first: the status strip finalization keeps on the job's row, so
        this reads the jobs table only. It outlives retention, as the tallies
        do: a strip may name runs that were pruned since."""
        keys = None if jobs is None else inputs.keys("jobs", jobs)
        return self._jobs.recent_outcomes(keys)

    def count_stale(self) -> int:
        """Active runs silent for longer than ``stale_after``: what :meth:`reap`
        would finalize as ``heartbeat_timeout`` now."""
        return self._runs.count_stale(self.clock.now() - self.stale_after)

    def count_started(self, status: RunStatus | str, *, since: datetime) -> int:
        """How many runs that started at or after ``since`` are now in
        ``status`` (e.g. failed in the last day); an index range, whatever
        the size of the history."""
        target = inputs.choice("status", status, RunStatus)
        cutoff = inputs.timestamp("since", since, optional=False)
        assert cutoff is not None
        return self._runs.count_started(target, cutoff)

    def list_runs_by_page(
        self, /, page: int, *, limit: int = 50, **filters: Unpack[RunFilters]
    ) -> NumberedPage[RunRecord]:
        """Page ``page`` (from 1) of the runs :meth:`list_runs` lists, with the
        total. Page numbers reach the first :data:`PAGE_WINDOW` runs (an OFFSET
        walks the rows it skips, a count the rows it counts: both stop
        there); the cursor of :meth:`list_runs` goes further."""
        checked = run_filter(("page", "limit"), **filters)
        inputs.positive_int("page", page, limit=1_000_000)
        inputs.positive_int("limit", limit, limit=MAX_PAGE)
        offset = (page - 1) * limit
        if offset >= PAGE_WINDOW:
            raise InvalidInput(
                "page",
                f"page {page} of {limit} starts at run {offset + 1:,}",
                f"pages within the first {PAGE_WINDOW:,} runs (page <= "
                f"{-(-PAGE_WINDOW // limit)} at this limit); beyond, follow next_cursor",
            )
        rows = self._runs.list_runs(checked, limit, None, offset=offset)
        total = self._runs.count_runs(checked, at_most=PAGE_WINDOW + 1)
        exact = total <= PAGE_WINDOW
        return NumberedPage(rows, page, limit, min(total, PAGE_WINDOW), exact)

    def job_states(self, provider: str | None = None) -> list[JobState]:
        """Every job (of ``provider``) with its active run count and the pause
        of its provider, ordered by key."""
        provider = inputs.key("provider", provider, optional=True)
        return self.overview.job_states(self.clock.now(), provider)

    def job_state(self, job: str) -> JobState:
        """One job's state; :class:`JobNotFound` if no run ever named it."""
        return self.overview.job_state(self.clock.now(), inputs.key("job", job))

    def providers(self) -> list[ProviderState]:
        """Providers named by a job or by a pause in force, with their pause."""
        return self.overview.providers(self.clock.now())

    def job_tallies(self) -> list[JobTally]:
        """Per job and terminal status: runs, items and durations, added up at
        each finalization (retention does not lower them)."""
        return self.overview.tallies()

    def health(self) -> Health:
        """Whether the database answers and stale runs are being reaped."""
        return self.overview.health(self.clock.now)

    def list_items(
        self,
        run_id: int,
        *,
        status: str | None = None,
        group: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[ItemRecord]:
        """A run's items in the order they were recorded, one page at a time."""
        inputs.positive_int("run_id", run_id)
        item_status = inputs.choice("status", status, ItemStatus).value if status else None
        inputs.positive_int("limit", limit, limit=MAX_PAGE)
        after = decode_cursor(cursor)
        rows = self._history.list_items(
            run_id, item_status, inputs.key("group", group, optional=True), limit + 1, after
        )
        if not rows and self._runs.get_run(run_id) is None:
            raise RunNotFound(run_id)
        return _page(rows, limit)

    def group_summary(self, run_id: int) -> list[GroupSummary]:
        """Per group of a run's items (``run.item(..., group=...)``): counts by
        status and the sources with a success, ordered by group."""
        inputs.positive_int("run_id", run_id)
        summaries: dict[str, tuple[dict[str, int], list[str]]] = {}
        for group, source, status, n in self._history.item_group_counts(run_id):
            counts, found_in = summaries.setdefault(group, ({}, []))
            counts[status] = counts.get(status, 0) + n
            if status == ItemStatus.SUCCESS and source is not None:
                found_in.append(source)
        return [GroupSummary(g, c, tuple(f)) for g, (c, f) in summaries.items()]

    def get_job(self, job: str) -> JobRecord | None:
        return self._jobs.get_job(inputs.key("job", job))

    def jobs(self, provider: str | None = None) -> list[JobRecord]:
        return self._jobs.list_jobs(inputs.key("provider", provider, optional=True))

    def job_providers(self) -> dict[str, str | None]:
        """Every job's key and provider, by key (what filter forms offer)."""
        return self._jobs.job_providers()

    def carried(self, job: str) -> Carried:
        """What the job owes, oldest first: items and slices still handed to
        its runs, and those given up (``state``). :class:`JobNotFound` if no
        run ever named the job."""
        key = inputs.key("job", job)
        if self._jobs.get_job(key) is None:
            raise JobNotFound(key)
        return self._carry.carried(key)

    def watermark(self, job: str) -> datetime | None:
        """Where the job's next run's window starts."""
        state = self.get_job(job)
        return state.watermark if state else None

    def get_jobs(self, jobs: Sequence[str]) -> dict[str, JobRecord]:
        """The jobs with these keys, by key (unknown keys are left out)."""
        keys = inputs.keys("jobs", jobs)
        return {record.key: record for record in self._jobs.get_jobs(keys)} if keys else {}

    def ensure_job(self, job: str, *, provider: str | None = None) -> None:
        """Create the job's row unless it exists (a job is otherwise created by
        its first run); the runner does this for every job it schedules."""
        inputs.key("job", job)
        inputs.key("provider", provider, optional=True)
        self._jobs.ensure_job(job, provider, self.clock.now())
        self.known_jobs.add(job)

    def claim_tick(self, job: str, *, due: datetime | None, next_due: datetime) -> bool:
        """Move the job's next due time from ``due`` (as last read; ``None``
        if never scheduled) to ``next_due``, if no one else did. True means this
        caller owns the tick ``due``: of many runners, exactly one gets True."""
        inputs.key("job", job)
        seen = inputs.timestamp("due", due)
        target = inputs.timestamp("next_due", next_due, optional=False)
        assert target is not None
        return self._jobs.claim_tick(job, seen, target)

    def skip_tick(self, job: str, *, reason: str) -> None:
        """Record that a due tick of the job was skipped, and why (issue 21:
        the runner claimed it, but the job's slots or its provider's limit
        were taken): the job row counts it in ``ticks_skipped`` and keeps
        ``last_skipped_at`` (database time) and ``last_skip_reason`` (at most
        255 characters). :class:`JobNotFound` if the job has no row."""
        key = inputs.key("job", job)
        why = inputs.text("reason", reason, limit=MAX_SKIP_REASON)
        if not self._jobs.skip_tick(key, why, self.clock.now()):
            raise JobNotFound(key)

    def claim_maintenance(self, task: str, every: timedelta | float | str) -> bool:
        """Whether the caller should run maintenance ``task`` now: True for one
        caller per ``every``, however many processes ask."""
        inputs.key("task", task, limit=64)
        now = self.clock.now()
        every_ = inputs.duration("every", every, limit=inputs.MAX_DURATION)
        return self._history.claim_maintenance(task, now, now - every_)


class _Keyed(Protocol):
    @property
    def id(self) -> int: ...


K = TypeVar("K", bound=_Keyed)


def _page(rows: list[K], limit: int) -> Page[K]:
    """One page from ``limit + 1`` rows fetched in key order: the extra row
    only says whether a next page exists."""
    page = rows[:limit]
    return Page(page, encode_cursor(page[-1].id) if len(rows) > limit else None)


#: Longest cursor accepted: ours are about 20 characters.
MAX_CURSOR = 200
#: Largest id a cursor may hold: the BIGINT maximum.
MAX_ID = 2**63 - 1


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id inside an opaque cursor; a cursor we did not make is
    :class:`InvalidCursor` (an edited one too: its id must be one that a
    BIGINT column can hold, or the database driver would fail on it)."""
    if cursor is None:
        return None
    try:
        if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR:
            raise ValueError("not a cursor")
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "v1" or not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise ValueError(prefix)
        result = int(value)
        if not 1 <= result <= MAX_ID:
            raise ValueError(value)
        return result
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor() from None
