"""How to start one run: the options of ``ledger.run(...)`` as one frozen value.

The caller's keyword options are a :class:`StartOptions` (typed, so a
misspelt option is a type error where it is written); the ledger builds a
:class:`StartRequest` from them and checks it once (:meth:`StartRequest.checked`),
before anything is written; the lifecycle reads its fields. Adding a start
option is one key in each of the two, here (a test keeps them the same).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple, TypedDict

from runtrack import inputs
from runtrack.carry import check_options
from runtrack.errors import InvalidInput
from runtrack.models import DEFAULT_MAX_CARRY_ATTEMPTS, OnPartial, RunStatus
from runtrack.store.values import NewRun

__all__ = ["StartOptions", "StartRequest"]


class StartOptions(TypedDict, total=False):
    """The keyword options of ``ledger.run(job, ...)``, ``start_run``,
    ``create_run`` and ``tracked``; each is optional (its default in
    :class:`StartRequest`)."""

    #: Who the job pulls from; pauses apply per provider.
    provider: str | None
    #: JSON object kept with the run (``run.params``).
    params: dict[str, Any] | None
    #: Who asked: ``"system"``, ``"user:ana"``, ``"schedule"``...
    triggered_by: str
    #: How many runs of the job may be active at once (lease slots).
    concurrency: int
    #: The run's window; without a start, it begins at the job's watermark.
    window_start: datetime | None
    window_end: datetime | None
    #: Whether an explicit window moves the watermark (a backfill's does not).
    advance_watermark: bool | None
    #: The attempt number, and the run this one retries (its checkpoint resumes).
    attempt: int
    retry_of: int | None
    #: The runner's retry policy of the attempt, kept with the run (JSON).
    retry_policy: dict[str, Any] | None
    #: What a partial end does with what failed: carry, hold or advance.
    on_partial: OnPartial | str
    max_carry_attempts: int
    #: ``{"team": "growth"}``: kept with the run, filtered on by ``list_runs``.
    labels: dict[str, str] | None


class StartRequest(NamedTuple):
    """The options of :meth:`runtrack.Ledger.run` (see there), for one run.
    Immutable; a tuple rather than a frozen dataclass because one is built
    for every run and a tuple is built in one step."""

    job: str
    provider: str | None = None
    params: dict[str, Any] | None = None
    triggered_by: str = "system"
    concurrency: int = 1
    window_start: datetime | None = None
    window_end: datetime | None = None
    advance_watermark: bool | None = None
    attempt: int = 1
    retry_of: int | None = None
    retry_policy: dict[str, Any] | None = None
    on_partial: OnPartial | str = OnPartial.CARRY
    max_carry_attempts: int = DEFAULT_MAX_CARRY_ATTEMPTS
    #: ``{"team": "growth"}``: kept with the run, filtered on by ``list_runs``.
    labels: dict[str, str] | None = None

    @classmethod
    def of(cls, job: str, options: StartOptions) -> StartRequest:
        """A checked request from keyword options; an option this type does
        not have is refused, after the others were checked."""
        try:
            return cls(job, **options).checked()
        except TypeError:
            if not set(options) - OPTIONS:
                raise  # not an unknown option: a bug, not bad input
        known: dict[str, Any] = {k: v for k, v in options.items() if k in OPTIONS}
        request = cls(job, **known).checked()
        unknown = set(options) - OPTIONS
        if unknown:
            raise InvalidInput(
                ", ".join(sorted(unknown)), "unknown option", ", ".join(sorted(OPTIONS))
            )
        return request

    def checked(self) -> StartRequest:
        """This request if every option is valid (its window in UTC), else
        :class:`InvalidInput` naming the first bad one."""
        # The defaults, which most starts pass, cost no call.
        inputs.key("job", self.job)
        if self.provider is not None:
            inputs.key("provider", self.provider)
        if self.params is not None:
            inputs.json_value("params", self.params, mapping=True)
        if self.triggered_by != "system" or type(self.triggered_by) is not str:
            inputs.key("triggered_by", self.triggered_by)
        if self.concurrency != 1 or type(self.concurrency) is not int:
            inputs.positive_int("concurrency", self.concurrency, limit=1000)
        if self.attempt != 1 or type(self.attempt) is not int:
            inputs.positive_int("attempt", self.attempt)
        if self.retry_of is not None:
            inputs.positive_int("retry_of", self.retry_of)
        if self.retry_policy is not None:
            inputs.json_value("retry_policy", self.retry_policy, mapping=True)
        if self.advance_watermark is not None:
            inputs.flag("advance_watermark", self.advance_watermark)
        attempts = self.max_carry_attempts
        default = type(attempts) is int and attempts == DEFAULT
        if self.on_partial is not OnPartial.CARRY or not default:
            check_options(self.on_partial, attempts)
        request = self
        if self.labels is not None:
            # A copy: what is written is what was checked. None when empty, so
            # that a start without labels takes the one-statement path.
            request = self._replace(labels=inputs.labels("labels", self.labels) or None)
        if self.window_start is None and self.window_end is None:
            return request  # the common start: nothing to convert
        start = inputs.timestamp("window_start", self.window_start)
        end = inputs.timestamp("window_end", self.window_end)
        if start is not None and end is not None and start > end:
            raise InvalidInput(
                "window_start",
                f"{start.isoformat()} is after window_end {end.isoformat()}",
                "window_start <= window_end",
            )
        return request._replace(window_start=start, window_end=end)

    def new_run(
        self,
        status: RunStatus,
        now: datetime,
        *,
        moves: bool,
        window_end: datetime | None,
        every_carry_option: bool = False,
        **more: Any,
    ) -> NewRun:
        """The run this request inserts, created ``now`` in ``status``;
        ``more``: the rest of :class:`NewRun` (who runs it, a queued run's
        links). Its carry options are written only where they differ from
        the defaults, unless ``every_carry_option``."""
        policy, attempts = OnPartial(self.on_partial), self.max_carry_attempts
        return NewRun(
            str(uuid.uuid4()),
            self.job,
            self.provider,
            status,
            now,
            self.triggered_by,
            self.attempt,
            moves,
            params=self.params,
            window_start=self.window_start,
            window_end=window_end,
            retry_of=self.retry_of,
            retry_policy=self.retry_policy,
            on_partial=policy.value
            if every_carry_option or policy is not OnPartial.CARRY
            else None,
            max_carry_attempts=attempts if every_carry_option or attempts != DEFAULT else None,
            labels=self.labels,
            **more,
        )


DEFAULT = DEFAULT_MAX_CARRY_ATTEMPTS
#: Every option's name (``job`` included, as the error for an unknown one lists).
OPTIONS = frozenset(StartRequest._fields)
