"""The runner: registered jobs run on their schedules, with retries, provider
pauses, maintenance and graceful shutdown.

Any number of runner processes may share one database; it is their only
coordinator. Each cycle a runner reads its jobs' next due times, and owns a
due tick only if its conditional update moves ``jobs.next_due_at`` forward
(``Ledger.claim_tick``), so every tick runs once. The job lease
(``concurrency``) still keeps two runs of one job from overlapping: a tick
that finds the job busy is skipped, not queued, and the skip is recorded on
the job row (:mod:`runtrack.runner.skips`).

A runner also works the queue (issue 17, :mod:`runtrack.runner.feed`): it
claims pending runs of its jobs (triggers, re-runs) and runs them like ticks.
With ``concurrency`` above 1 up to that many attempts run side by side.

Each attempt is its own run (``attempt``, ``retry_of``, ``retry_policy``).
Retries wait in this process's memory: if the process dies, the job's next
tick runs it again, and a retry that a newer run has overtaken is dropped.
The retry of a queued run is queued again when due, with its params and
window (:mod:`runtrack.runner.retrying`).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

from runtrack import inputs
from runtrack.errors import InvalidInput, RuntrackError, SchedulingError, describe
from runtrack.expectations import Expect
from runtrack.failures import described
from runtrack.ledger import Ledger
from runtrack.models import DEFAULT_MAX_CARRY_ATTEMPTS, JobRecord, OnPartial, RunStatus
from runtrack.runner.alerts import publish_expectations
from runtrack.runner.execution import Attempt, Execution, Outcome, Stopper, stop_on_signals
from runtrack.runner.feed import Feed, Pool, pause_provider
from runtrack.runner.maintenance import Maintenance
from runtrack.runner.presence import Presence
from runtrack.runner.registry import JobSpec, Registry, make_spec
from runtrack.runner.retry import Action, RetryPolicy, backoff_until
from runtrack.runner.retrying import next_attempt, requeue, superseded
from runtrack.runner.skips import note_busy
from runtrack.runner.summary import CycleSummary, Tally
from runtrack.runner.threads import JobThread

__all__ = ["Runner"]

log = logging.getLogger("runtrack.runner")
F = TypeVar("F", bound=Callable[..., object])

MIN_SLEEP = 0.05  # never spin, whatever the clock says
# A stored tick later than the schedule's next one by more than this means the
# schedule changed (the slack absorbs the clock differences between runners).
RESCHEDULE_SLACK = timedelta(minutes=1)


class Runner:
    """Runs registered jobs on their schedules against one ledger.

    ``grace``: seconds the current run gets to finish after SIGTERM/SIGINT or
    :meth:`stop` before it is cancelled (``error_type="shutdown"``).
    ``retry``: the policy of jobs registered without one. ``reap_every`` /
    ``prune_every`` (``None`` disables) space the built-in maintenance across
    all runner processes; prune deletes history older than ``prune_older_than``.
    ``max_sleep`` bounds the idle wait, ``jitter`` the random extra (seconds).
    ``concurrency``: attempts run at once (sync jobs each in a thread);
    ``poll_interval``: the longest an idle runner waits before it looks for
    queued runs (PostgreSQL wakes it at once).
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        worker_id: str | None = None,
        retry: RetryPolicy | None = None,
        grace: timedelta | float | str = 30.0,
        reap_every: timedelta | float | str | None = "1m",
        prune_every: timedelta | float | str | None = "1d",
        prune_older_than: timedelta | float | str = "90d",
        max_sleep: timedelta | float | str = 30.0,
        jitter: float = 1.0,
        check_every: timedelta | float | str | None = "30s",
        concurrency: int = 1,
        poll_interval: timedelta | float | str = 1.0,
    ) -> None:
        if not isinstance(ledger, Ledger):
            raise InvalidInput("ledger", f"got {type(ledger).__name__}", "a runtrack Ledger")
        if worker_id is not None:  # runs record the ledger's worker id: a runner names its runs
            ledger.worker_id = inputs.key("worker_id", worker_id)
        self.ledger = ledger
        self.worker_id = ledger.worker_id
        self.default_retry = retry or RetryPolicy()
        self.grace = inputs.duration("grace", grace, allow_zero=True).total_seconds()
        self.maintenance = Maintenance(
            reap_every, prune_every, prune_older_than, check_every=check_every
        )
        cap = inputs.duration("max_sleep", max_sleep).total_seconds()
        for every in (self.maintenance.reap_every, self.maintenance.check_every):
            cap = min(cap, every.total_seconds()) if every is not None else cap
        self.max_sleep = cap
        self.jitter = inputs.number("jitter", jitter, limit=inputs.MAX_INT)
        if self.jitter < 0:  # as RetryPolicy: random.uniform would get a negative bound
            raise InvalidInput("jitter", f"got {describe(jitter)}", "a number of seconds >= 0")
        self._registry = Registry()
        concurrency = inputs.positive_int("concurrency", concurrency, limit=256)
        poll = inputs.duration("poll_interval", poll_interval).total_seconds()
        self._feed = Feed(ledger, self._registry, poll)
        # Issue 18: explicit expectations by job; stored on the first cycle.
        self._expects: dict[str, Expect] = {}
        self._expects_stored = False
        self._retries: list[Attempt] = []
        self._stopper = Stopper()
        self._presence = Presence(ledger, self._registry, concurrency)  # the worker row
        self._hands = JobThread()  # the job thread of attempts run one at a time

    # -- registration -------------------------------------------------------------

    def job(
        self,
        key: str,
        *,
        provider: str,
        every: timedelta | float | str | None = None,
        cron: str | None = None,
        tz: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: timedelta | float | str | None = None,
        concurrency: int = 1,
        failure_backoff: timedelta | float | str | None = None,
        catchup: int = 1,
        on_partial: OnPartial | str = OnPartial.CARRY,
        max_carry_attempts: int = DEFAULT_MAX_CARRY_ATTEMPTS,
        expect: Expect | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as job ``key``; it is called with
        the :class:`~runtrack.Run` handle (``async def`` works too).

        Exactly one of ``every`` (``"15m"``, ``"1h"``, a timedelta) and ``cron``
        (UTC, or the wall clock of the IANA zone ``tz``). ``timeout`` cancels a
        run that takes longer (``error_type="timeout"``). ``failure_backoff``
        delays the schedule after failed runs: ``failure_backoff * 2**(streak-1)``
        after the last one, at most 64 x. A tick that runs late does not hide the ones after it:
        the last ``catchup`` ticks that fell due meanwhile still run, one after
        another; older missed ticks are skipped. ``on_partial`` and
        ``max_carry_attempts`` are those of :meth:`Ledger.run`. ``expect``: the
        job's :class:`~runtrack.Expect` (default: late after 3 x its schedule's
        interval). Every problem raises :class:`SchedulingError` here.
        """
        if expect is not None and not isinstance(expect, Expect):
            raise SchedulingError(key, "expect", f"got {describe(expect)}", "an Expect(...)")

        def register(fn: F) -> F:
            spec = make_spec(
                key,
                fn,
                provider=provider,
                every=every,
                cron=cron,
                retry=retry,
                default_retry=self.default_retry,
                timeout=timeout,
                concurrency=concurrency,
                failure_backoff=failure_backoff,
                catchup=catchup,
                on_partial=on_partial,
                max_carry_attempts=max_carry_attempts,
                tz=tz,
            )
            self._registry.add(spec)
            if expect is not None:
                self._expects[key] = expect
            return fn

        return register

    @property
    def concurrency(self) -> int:
        """Attempts run at once (also what the worker row shows)."""
        return self._presence.concurrency

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        self._presence.concurrency = inputs.positive_int("concurrency", value, limit=256)

    @property
    def jobs(self) -> list[JobSpec]:
        """The registered jobs, in registration order."""
        return list(self._registry)

    # -- the cycle ------------------------------------------------------------------

    def run_once(self) -> CycleSummary:
        """Do the maintenance that is due, then run every job that is due now
        (retries first), one after another, and say what happened."""
        with contextlib.closing(self._hands):  # a cycle run by hand leaves no thread behind
            return self._cycle()

    def _cycle(self) -> CycleSummary:
        tally = Tally()
        self._presence.beat()
        if not self._expects_stored:  # issue 18
            self._expects_stored = publish_expectations(self.ledger, self._registry, self._expects)
        self.maintenance.run(self.ledger)
        now = self.ledger.now()
        states = self.ledger.get_jobs(self._registry.keys())
        paused = self._paused()
        for attempt in self._due(now, states, paused, tally):
            if self._stopper.requested:
                break
            if attempt.requeue is not None:  # claimed below, as any queued run
                requeue(self.ledger, attempt)
                continue
            if attempt.spec.provider in paused:  # paused earlier in this cycle
                tally.add("skipped_paused")
                self._hold(attempt)
                continue
            if attempt.retry_of is None and not self._claim(attempt):
                continue  # another runner owns this tick
            self._record(attempt, self._run_attempt(attempt, self._hands), tally, paused)
        if self._stopper.requested:
            return tally.summary()
        # The ticks just run moved their due times: read them again.
        states = self.ledger.get_jobs(self._registry.keys())
        dues = [s.next_due_at for s in states.values() if s.next_due_at]
        soonest = min([*dues, *(r.due for r in self._retries)], default=None)
        while not self._stopper.requested:
            # Queued runs, until none is left or a tick falls due.
            if soonest is not None and self.ledger.now() >= soonest:
                break
            queued = self._feed.claim(paused)
            if queued is None:
                break
            self._record(queued, self._run_attempt(queued, self._hands), tally, paused)
        return tally.summary()

    def _cycle_side_by_side(self, pool: Pool) -> _View | None:
        """One cycle with ``concurrency`` above 1: register (heartbeat if due),
        hand due ticks, retries and queued runs to free slots, record ended
        attempts. Returns the job states and pauses read if still true (no tick
        claimed): the sleep after it need not read them (a cycle per run)."""
        tally = Tally()
        self._presence.beat()
        if not self._expects_stored:
            self._expects_stored = publish_expectations(self.ledger, self._registry, self._expects)
        self.maintenance.run(self.ledger)
        paused = self._paused()
        for attempt, outcome in pool.finished():
            self._record(attempt, outcome, tally, paused)
        now = self.ledger.now()
        states = self.ledger.get_jobs(self._registry.keys())
        moved = False  # a tick claimed here moved its job's due time
        for attempt in self._due(now, states, paused, tally):
            if attempt.requeue is not None and not self._stopper.requested:
                requeue(self.ledger, attempt)
                continue
            if self._stopper.requested or attempt.spec.provider in paused or not pool.free():
                self._hold(attempt)  # a tick stays due in the database
                continue
            if attempt.retry_of is None:
                moved = True
                if not self._claim(attempt):
                    continue
            pool.submit(attempt, self._run_attempt)
        while pool.free() and not self._stopper.requested:
            queued = self._feed.claim(paused)
            if queued is None:
                break
            pool.submit(queued, self._run_attempt)
        return None if moved else _View(states, paused)

    def _due(
        self,
        now: datetime,
        states: dict[str, JobRecord],
        paused: dict[str, datetime],
        tally: Tally,
    ) -> list[Attempt]:
        """Retries whose time has come (oldest first), then due ticks in random
        order, so that runners sharing the database do not all race for the
        same job first."""
        retries = [r for r in self._retries if r.due <= now and not superseded(r, states)]
        self._retries = [r for r in self._retries if r.due > now]
        ticks: list[Attempt] = []
        for spec in self._registry:
            state = states.get(spec.key)
            tick = self._tick(spec, state, now)
            if tick is None:
                continue
            if spec.provider in paused:
                tally.add("skipped_paused")  # the tick stays due until the pause ends
            elif (until := backoff_until(spec.failure_backoff, state)) is not None and until > now:
                tally.add("skipped_backoff")
            else:
                ticks.append(Attempt(spec, due=tick, tick=tick))
        random.shuffle(ticks)
        return sorted(retries, key=lambda a: a.due) + ticks

    def _tick(self, spec: JobSpec, state: JobRecord | None, now: datetime) -> datetime | None:
        """The job's due tick, if it is due. A job the database has never
        scheduled gets its first tick (by one runner: a conditional update), and
        so does a job whose stored tick is further away than its schedule
        allows: the schedule was tightened by a redeploy, and is followed now."""
        stored = state.next_due_at if state is not None else None
        if stored is None and state is None:
            self.ledger.ensure_job(spec.key, provider=spec.provider)
        due = stored
        if stored is None or stored > spec.schedule.next_after(now, now) + RESCHEDULE_SLACK:
            due = spec.schedule.first_due(now)
            if not self.ledger.claim_tick(spec.key, due=stored, next_due=due):
                return None  # another runner scheduled it first; next cycle reads it
        assert due is not None
        return due if due <= now else None

    def _claim(self, attempt: Attempt) -> bool:
        """Own the tick by moving the job's next due time past now."""
        spec = attempt.spec
        following = spec.schedule.next_after(attempt.due, self.ledger.now(), spec.catchup)
        return self.ledger.claim_tick(spec.key, due=attempt.due, next_due=following)

    def _run_attempt(self, attempt: Attempt, hands: JobThread) -> Outcome:
        return Execution(self.ledger, attempt, self._stopper, self.grace, hands)()

    def _record(
        self, attempt: Attempt, outcome: Outcome, tally: Tally, paused: dict[str, datetime]
    ) -> None:
        if outcome.busy:
            tally.add("skipped_busy")
            note_busy(self.ledger, attempt, outcome.error)  # issue 21: on the job row
            return
        if outcome.run_id is None or outcome.status is None:
            assert outcome.error is not None
            raise outcome.error  # the run could not even start (database down)
        tally.ran(outcome.run_id, outcome.status)
        if outcome.status is RunStatus.FAILED and outcome.error is not None:
            self._after_failure(attempt, outcome, tally, paused)

    # -- after a failure ----------------------------------------------------------

    def _after_failure(
        self, attempt: Attempt, outcome: Outcome, tally: Tally, paused: dict[str, datetime]
    ) -> None:
        spec, error = attempt.spec, outcome.error
        assert error is not None and outcome.run_id is not None
        decision = outcome.decision or spec.retry.decide(attempt.used, error)
        log.info(
            "run %s of %s failed: %s: %s; %s",
            outcome.run_id,
            spec.key,
            type(error).__name__,
            described(error, 1000),  # its __str__ may raise, or say megabytes
            decision.reason,
        )
        if decision.action is Action.GIVE_UP or self._stopper.requested:
            return
        used = attempt.used + 1 if decision.action is Action.RETRY else attempt.used
        if decision.action is Action.PAUSE and decision.delay > timedelta(0):
            pause_provider(self.ledger, spec, outcome.run_id, decision.delay, error, paused)
        due = self.ledger.now() + decision.delay
        self._retries.append(next_attempt(attempt, outcome.run_id, due, used))
        tally.add("retries")

    def _hold(self, attempt: Attempt) -> None:
        if attempt.retry_of is not None:  # a retry waits for a later cycle (a tick stays due)
            self._retries.append(attempt)

    def _paused(self) -> dict[str, datetime]:
        return {pause.provider: pause.until for pause in self.ledger.pauses()}

    # -- forever ---------------------------------------------------------------------

    def run_forever(self, *, handle_signals: bool = True) -> None:
        """Run cycles until :meth:`stop`, SIGTERM or SIGINT, sleeping until the
        next due time (plus jitter) in between. On a stop request no new run
        starts; the current one gets ``grace`` seconds, then is cancelled
        (a second signal cancels it at once). Returns when no run is active,
        so the process can exit 0. A database outage is logged and retried."""
        errors = 0
        pool = Pool(self.concurrency)
        with stop_on_signals(self._stopper, handle_signals), self._presence.alive():
            log.info("runner %s started: %d job(s)", self.worker_id, len(self._registry))
            while not self._stopper.requested:
                try:
                    view = None
                    if self.concurrency == 1:
                        self._cycle()
                    else:
                        view = self._cycle_side_by_side(pool)
                    pause = self._sleep_seconds(view)
                    errors = 0
                except Exception as exc:  # the loop outlives outages and bugs alike
                    errors += 1
                    pause = min(self.max_sleep, 2.0**errors)
                    if isinstance(exc, RuntrackError):
                        log.warning("runner cycle failed (retrying in %.0f s): %s", pause, exc)
                    else:
                        log.exception("runner cycle failed (retrying in %.0f s)", pause)
                self._feed.wait(pause, self._stopper, pool.woken)
            pool.join()  # every attempt applies the grace itself
            self._hands.close()
            self._feed.close()
        log.info("runner %s stopped", self.worker_id)

    def stop(self, *, immediate: bool = False) -> None:
        """Stop scheduling: the current run gets ``grace`` seconds to finish
        (none if ``immediate``), then is cancelled. Safe from any thread and
        from a signal handler."""
        self._stopper.request(immediate=immediate)

    @property
    def stopping(self) -> bool:
        return self._stopper.requested

    def _sleep_seconds(self, view: _View | None = None) -> float:
        """Until the soonest moment a job, retry or paused provider is ready
        (``view``: the job states and pauses just read, if still true)."""
        now = self.ledger.now()
        if view is None:
            view = _View(self.ledger.get_jobs(self._registry.keys()), self._paused())
        states, paused = view
        ready = [self._ready_at(s, states.get(s.key), paused, now) for s in self._registry]
        ready += [max(r.due, paused.get(r.spec.provider, r.due)) for r in self._retries]
        soonest = min(ready, default=now + timedelta(seconds=self.max_sleep))
        delay = min(max((soonest - now).total_seconds(), MIN_SLEEP), self.max_sleep)
        return delay + random.uniform(0.0, min(self.jitter, delay / 10))

    def _ready_at(
        self,
        spec: JobSpec,
        state: JobRecord | None,
        paused: dict[str, datetime],
        now: datetime,
    ) -> datetime:
        due = state.next_due_at if state is not None and state.next_due_at else now
        backoff = backoff_until(spec.failure_backoff, state) or due
        return max(due, paused.get(spec.provider, due), backoff)

    def __repr__(self) -> str:
        return f"<Runner {self.worker_id} jobs={len(self._registry)} on {self.ledger!r}>"


class _View(NamedTuple):
    """What a cycle read: the jobs' states and the paused providers."""

    states: dict[str, JobRecord]
    paused: dict[str, datetime]
