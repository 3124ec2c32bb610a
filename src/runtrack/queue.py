"""The queue (issue 17): triggers, re-runs and claims of pending runs.

The runs table is the queue. ``trigger`` and ``rerun`` insert a ``pending``
run that holds no lease; any worker serving its job claims it (one
conditional ``pending -> running`` update that takes the lease, see
:mod:`runtrack.store.queue`), by priority (manual, then schedule, then
backfill) and then age. A pending run nobody claims expires after the
ledger's ``pending_ttl`` once no live worker serves its job (the reaper ends
it ``cancelled`` / ``expired``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from runtrack import inputs
from runtrack.clock import Clock
from runtrack.errors import InvalidInput, JobNotFound, describe
from runtrack.lifecycle import Lifecycle
from runtrack.models import RunRecord, RunStatus
from runtrack.queries import Queries
from runtrack.run import Run
from runtrack.start import StartRequest
from runtrack.store.backfills import BackfillStore
from runtrack.store.jobs import JobStore
from runtrack.store.queue import QueueStore

__all__ = ["PRIORITY_BACKFILL", "PRIORITY_MANUAL", "PRIORITY_SCHEDULE", "Queue"]

#: The queue's priorities: lower is claimed first (then older first).
PRIORITY_MANUAL = 0
PRIORITY_SCHEDULE = 1
PRIORITY_BACKFILL = 2


class Queue:
    """Queued runs: the part of the :class:`~runtrack.ledger.Ledger` behind
    ``trigger``, ``rerun``, ``create_run`` and the runner's claims."""

    def __init__(
        self,
        jobs: JobStore,
        queue: QueueStore,
        backfills: BackfillStore,
        clock: Clock,
        lifecycle: Lifecycle,
        queries: Queries,
    ) -> None:
        self._jobs = jobs
        self._queue = queue
        self._clock = clock
        self._lifecycle = lifecycle
        self._queries = queries
        self._backfills = backfills

    def trigger(
        self,
        job: str,
        *,
        params: dict[str, Any] | None = None,
        by: str = "user",
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        labels: dict[str, str] | None = None,
    ) -> RunRecord:
        """Queue a run of ``job`` (``pending``, ``triggered_by=by``) for any
        worker serving the job, and return it. Without a window the run covers
        the job's live window when it starts (from the watermark to then);
        with one (both ends, end after start) it covers exactly that, and
        moves the watermark only if it starts at it. A pending run of the job
        with the same params, window and ``labels`` is returned instead of a
        second one."""
        request = self._checked(job, params, by, window_start, window_end, labels)
        return self._enqueue(request, dedupe=True)

    def rerun(self, run_id: int, *, by: str = "user") -> RunRecord:
        """Queue a run of the same job with the same params, window and
        labels as run ``run_id`` (its ``rerun_of``)."""
        original = self._queries.get_run(inputs.positive_int("run_id", run_id))
        inputs.key("by", by)
        start, end = original.window_start, original.window_end
        if start is None or end is None or end <= start:
            start = end = None  # an empty or open window: re-run the live one
        request = StartRequest(
            original.job,
            provider=original.provider,
            params=original.params,
            triggered_by=by,
            window_start=start,
            window_end=end,
            on_partial=original.on_partial,
            max_carry_attempts=original.max_carry_attempts,
            labels=original.labels or None,
        )
        # A re-run of a backfill's window stays a window of that backfill.
        return self._enqueue(
            request, dedupe=False, rerun_of=original.id, backfill_id=original.backfill_id
        )

    def retry(self, run_id: int, *, retry_policy: dict[str, Any] | None = None) -> RunRecord | None:
        """Queue the retry of the failed queued run ``run_id`` (a runner does,
        once the retry's delay has passed): the same job, params and window
        (a live one, if it had none), the same watermark rule (checked again
        when it is claimed) and backfill; ``attempt + 1``, ``retry_of``,
        ``triggered_by="retry"``. ``None``, nothing queued, if its backfill was
        cancelled or its window queued again since (a resume, a re-run)."""
        failed = self._queries.get_run(inputs.positive_int("run_id", run_id))
        if failed.status is not RunStatus.FAILED:
            raise InvalidInput("run_id", f"run {run_id} is {failed.status}", "a failed run")
        if retry_policy is not None:
            inputs.json_value("retry_policy", retry_policy, mapping=True)
        if not self._retry_stands(failed):
            return None
        start, end = failed.window_start, failed.window_end
        if start is None or end is None or end <= start:
            start = end = None  # a live window that had no watermark: live again
        request = StartRequest(
            failed.job,
            provider=failed.provider,
            params=failed.params,
            triggered_by="retry",
            window_start=start,
            window_end=end,
            attempt=failed.attempt + 1,
            retry_of=failed.id,
            retry_policy=retry_policy,
            on_partial=failed.on_partial,
            max_carry_attempts=failed.max_carry_attempts,
            labels=failed.labels or None,
        )
        return self._enqueue(
            request,
            dedupe=False,
            backfill_id=failed.backfill_id,
            moves=failed.moves_watermark,
            priority=PRIORITY_MANUAL if failed.backfill_id is None else PRIORITY_BACKFILL,
        )

    def create(self, request: StartRequest) -> RunRecord:
        """``create_run``: a pending run with the options of ``ledger.run``."""
        if self._jobs.get_job(request.job) is None:
            self._jobs.ensure_job(request.job, request.provider, self._clock.now())
        return self._enqueue(request, dedupe=False)

    def claim(self, concurrency: Mapping[str, int], paused: Sequence[str] = ()) -> Run | None:
        """Claim the next pending run of these jobs (job -> its concurrency)
        whose provider is not in ``paused`` nor at its limit; its handle,
        heartbeating, or ``None`` if there is none to claim now."""
        if not isinstance(concurrency, Mapping):
            raise InvalidInput(
                "concurrency", f"got {describe(concurrency)}", "a mapping of job key to slots"
            )
        served = {
            inputs.key("job", job): inputs.positive_int("concurrency", n, limit=1000)
            for job, n in concurrency.items()
        }
        skip = inputs.keys("paused", paused)
        if not served:
            return None
        claim = self._queue.claim_next(served, skip, self._lifecycle.stamp(), self._clock.now)
        if claim is None or claim.run is None:
            return None
        return self._lifecycle.adopt(claim)

    def limit_provider(self, provider: str, max_running: int | None) -> None:
        """Cap the running runs of ``provider`` across every worker (``None``
        lifts the limit); checked atomically whenever a queued run is claimed."""
        inputs.key("provider", provider)
        if max_running is not None:
            inputs.positive_int("max_running", max_running, limit=100_000)
        self._queue.set_provider_limit(provider, max_running, self._clock.now())

    def provider_limits(self) -> dict[str, int]:
        """Every provider limit: provider -> max running runs."""
        return self._queue.provider_limits()

    def pending_count(self, jobs: Sequence[str]) -> int:
        """How many runs of these jobs are queued."""
        keys = inputs.keys("jobs", jobs)
        return self._queue.pending_of(keys) if keys else 0

    # -- helpers ---------------------------------------------------------------------

    def _retry_stands(self, failed: RunRecord) -> bool:
        """A backfill window's retry is not queued once its backfill was
        cancelled, or its window queued again (resumed, re-run)."""
        if failed.backfill_id is None:
            return True
        start = failed.window_start
        assert start is not None  # a backfill's window is fixed
        return self._backfills.retry_stands(failed.backfill_id, start, failed.id)

    def _checked(
        self,
        job: str,
        params: dict[str, Any] | None,
        by: str,
        window_start: datetime | None,
        window_end: datetime | None,
        labels: dict[str, str] | None,
    ) -> StartRequest:
        """Every check of a trigger, before anything is written."""
        inputs.key("job", job)
        inputs.key("by", by)
        if params is not None:
            inputs.json_value("params", params, mapping=True)
        if (window_start is None) != (window_end is None):
            raise InvalidInput(
                "window_start/window_end",
                "give both ends of a window, or neither (the live window)",
                "window_start < window_end",
            )
        start = inputs.timestamp("window_start", window_start)
        end = inputs.timestamp("window_end", window_end)
        if start is not None and end is not None and end <= start:
            raise InvalidInput(
                "window_end",
                f"{end.isoformat()} is not after window_start {start.isoformat()}",
                "window_start < window_end",
            )
        record = self._jobs.get_job(job)
        if record is None:
            raise JobNotFound(job)
        return StartRequest(
            job,
            provider=record.provider,
            params=params,
            triggered_by=by,
            window_start=start,
            window_end=end,
            labels=labels,
        ).checked()  # the labels' checks (the rest was checked above)

    def _enqueue(
        self,
        r: StartRequest,
        *,
        dedupe: bool,
        rerun_of: int | None = None,
        backfill_id: int | None = None,
        moves: bool | None = None,
        priority: int = PRIORITY_MANUAL,
    ) -> RunRecord:
        if moves is None:
            fixed = r.window_start is not None
            moves = (not fixed) if r.advance_watermark is None else r.advance_watermark
            if rerun_of is not None or dedupe:
                moves = True  # a fixed window moves it only if it starts at it (see claims)
            if backfill_id is not None:
                moves = False  # a backfill never moves the watermark
        new = r.new_run(
            RunStatus.PENDING,
            self._clock.now(),
            moves=moves,
            window_end=r.window_end,
            every_carry_option=True,
            rerun_of=rerun_of,
            backfill_id=backfill_id,
            priority=priority,
        )
        queued = self._queue.enqueue(new, dedupe=dedupe)
        if queued is None:
            raise JobNotFound(r.job)
        return self._queries.get_run(queued[0])
