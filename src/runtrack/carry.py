"""What a partial run leaves owed, and what the next run is handed.

Guarantee 5 for partial runs: under ``on_partial="carry"`` (the default) the
watermark moves, and the items that ended ``error`` and the slices the code
reported with ``run.failed_slice`` become entries the job owes. Each later run
is offered them, one run at a time (``run.carried`` claims and reads them
when first asked for), and its end settles them (see
:func:`runtrack.store.carry.settle`): resolved, or one attempt more, whether
or not the code read them (nothing is carried forever), given up after
``max_carry_attempts``. ``"hold"`` keeps the watermark
where it was and carries nothing; ``"advance"`` moves on and forgets.

A run of a job that owes nothing, that failed nothing, pays nothing here: the
start learns whether the job owes (in the statement that starts the run), and
only then does its end read or write the ``carried`` table.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from runtrack import inputs
from runtrack.errors import InvalidInput
from runtrack.models import (
    DEFAULT_MAX_CARRY_ATTEMPTS,
    GOOD,
    Carried,
    OnPartial,
    RunStatus,
)
from runtrack.store.carry import CarryRequest
from runtrack.store.carry_handout import CarryStore
from runtrack.store.rows import naive

__all__ = ["RunCarry", "check_options"]

#: The attempts a carried entry may take at most (a bound, not a tuning knob).
MAX_CARRY_ATTEMPTS = 1000
#: Failed slices listed on the run's error details (all of them are carried).
SLICES_SHOWN = 100


def check_options(policy: object, attempts: object) -> None:
    """Validate ``on_partial`` and ``max_carry_attempts`` of a start request
    (the defaults, which every plain start passes, without a call)."""
    if policy is not None and policy is not OnPartial.CARRY:
        inputs.choice("on_partial", policy, OnPartial)
    default = type(attempts) is int and attempts == DEFAULT_MAX_CARRY_ATTEMPTS
    if attempts is not None and not default:
        inputs.positive_int("max_carry_attempts", attempts, limit=MAX_CARRY_ATTEMPTS)


class RunCarry:
    """One run's side of carrying: its policy, whether its job owes anything,
    what it was handed and the slices it reported failed."""

    __slots__ = ("_handed", "_handing", "max_attempts", "owes", "policy", "slices")

    def __init__(
        self,
        policy: OnPartial | str | None = None,
        max_attempts: int | None = None,
        owes: bool = False,
    ) -> None:
        self.policy = policy if type(policy) is OnPartial else OnPartial(policy or "carry")
        self.max_attempts = max_attempts or DEFAULT_MAX_CARRY_ATTEMPTS
        self.owes = owes
        self.slices: list[tuple[datetime, datetime, str | None]] = []
        self._handed: Carried | None = None
        self._handing = threading.Lock()  # one read, whichever thread asks first

    def failed_slice(self, start: object, end: object, reason: object) -> None:
        """Validate and keep one slice the run could not fetch."""
        first = inputs.timestamp("start", start, optional=False)
        last = inputs.timestamp("end", end, optional=False)
        assert first is not None and last is not None
        if first >= last:
            raise InvalidInput(
                "end", f"{last.isoformat()} is not after start {first.isoformat()}", "start < end"
            )
        text = inputs.text("reason", reason, optional=True)
        self.slices.append((first, last, text))

    def handed(self, store: CarryStore, job: str, run_id: int) -> Carried:
        """What the job owes, read once per run: the entries this run is
        handed, which no other running run holds (its end counts an attempt
        on each it does not resolve, and releases them)."""
        if self._handed is None:
            with self._handing:  # two threads' first reads: one set of entries
                if self._handed is None:
                    self._handed = store.owed(job, run_id) if self.owes else Carried()
        return self._handed

    def request(self, run_id: int, job: str, status: RunStatus, errors: int) -> CarryRequest | None:
        """What the run's end must settle; ``None`` when nothing (the hot path)."""
        adds = self.policy is OnPartial.CARRY and (
            errors > 0 or (bool(self.slices) and status in GOOD)
        )
        if not (self.owes or adds):
            return None
        handed = self._handed or Carried()
        return CarryRequest(
            run_id,
            job,
            self.policy,
            self.max_attempts,
            frozenset([e.id for e in handed.items] + [e.id for e in handed.slices]),
            tuple((_naive(s), _naive(e), reason) for s, e, reason in self.slices),
        )

    def details(self) -> dict[str, Any]:
        """The run's reported slices, for its ``error_details``."""
        shown = [
            {"start": s.isoformat(), "end": e.isoformat(), "reason": reason}
            for s, e, reason in self.slices[:SLICES_SHOWN]
        ]
        return {"failed_slices": shown, "failed_slice_count": len(self.slices)}


def _naive(value: datetime) -> datetime:
    result = naive(value)
    assert result is not None
    return result
