"""What one runner cycle did."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from runtrack.models import RunStatus

__all__ = ["CycleSummary", "Tally"]


@dataclass(frozen=True, slots=True)
class CycleSummary:
    """The result of :meth:`Runner.run_once`.

    ``ran`` counts the runs started (``succeeded + partial + failed +
    cancelled``); a job skipped because its provider is paused, its failure
    backoff has not elapsed, or it already has as many active runs as its
    concurrency allows did not run. ``retries`` counts the retries (and
    post-pause re-runs) scheduled for a later cycle.
    """

    ran: int = 0
    succeeded: int = 0
    partial: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped_paused: int = 0
    skipped_busy: int = 0
    skipped_backoff: int = 0
    retries: int = 0
    run_ids: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_BY_STATUS = {
    RunStatus.SUCCESS: "succeeded",
    RunStatus.PARTIAL: "partial",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
}


@dataclass(slots=True)
class Tally:
    """The mutable counterpart of :class:`CycleSummary`, filled during a cycle."""

    counts: dict[str, int] = field(default_factory=dict)
    run_ids: list[int] = field(default_factory=list)

    def add(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def ran(self, run_id: int, status: RunStatus) -> None:
        self.run_ids.append(run_id)
        self.add("ran")
        if status in _BY_STATUS:
            self.add(_BY_STATUS[status])

    def summary(self) -> CycleSummary:
        return CycleSummary(**self.counts, run_ids=tuple(self.run_ids))
