"""The volume guard (issue 18): a success/partial run whose guarded counter
falls below ``min_ratio`` (or rises above ``max_ratio``) x the median of the
job's last ``history`` successful values ends ``partial`` with an anomaly
recorded on it (``"offers_fetched 80 vs median 1,000 (-92%)"``); with
``hold_watermark`` it also leaves the watermark. A ``required`` counter that
ends 0 on a success does the same.

The history lives on the job row (``jobs.volume_history``: the last values
of each guarded counter; ``jobs.volume_anomaly``: the last anomaly, which
the ``volume`` incident reads) and costs no query of its own: a guarded
job's run start reads the history with the job's watermark, and the
finalization's job update writes the new one. (Two overlapping runs of a
job with ``concurrency`` > 1 each append to what their start read: the last
to finish wins, and one value may be missing from the history.) Jobs
without a volume or required expectation pay one set lookup at the start
and one at the end of a run: which jobs are guarded is read at most every
:data:`REFRESH` seconds.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtrack.expectations import Expect, Volume
from runtrack.handle import hold_watermark
from runtrack.models import RunStatus
from runtrack.store.incidents import AlertStore
from runtrack.store.values import RunEnd

__all__ = [
    "Anomaly",
    "Verdict",
    "VolumeGuard",
    "anomalies",
    "guard_final",
]

log = logging.getLogger("runtrack")

#: Seconds between two reads of which jobs are guarded (and how).
REFRESH = 30.0


@dataclass(frozen=True, slots=True)
class Anomaly:
    counter: str
    value: float
    median: float | None  # None: a required counter that ended 0
    summary: str


def anomalies(
    counters: Mapping[str, float], expect: Expect, history: Mapping[str, list[float]]
) -> list[Anomaly]:
    """The guarded counters out of bounds (pure)."""
    found = []
    for name, rule in expect.volume.items():
        value = float(counters.get(name, 0) or 0)
        found.extend(_out_of_bounds(name, value, rule, history.get(name, [])))
    for name in expect.required:
        if not counters.get(name):
            found.append(Anomaly(name, 0.0, None, f"{name} is 0 (required)"))
    return found


def _out_of_bounds(name: str, value: float, rule: Volume, past: list[float]) -> list[Anomaly]:
    recent = past[-rule.history :]
    if len(recent) < rule.min_history:
        return []  # not enough history to judge by
    median = statistics.median(recent)
    low = rule.min_ratio is not None and value < rule.min_ratio * median
    high = rule.max_ratio is not None and value > rule.max_ratio * median
    if not (low or high):
        return []
    change = f" ({(value - median) / median:+.0%})" if median else ""
    summary = f"{name} {value:,.0f} vs median {median:,.0f}{change}"
    return [Anomaly(name, value, median, summary)]


class VolumeGuard:
    """Judges a run's counters before its finalization; records the history after."""

    def __init__(self, alerts: AlertStore) -> None:
        self.alerts = alerts
        self._lock = threading.Lock()
        self._guarded: dict[str, Expect] = {}
        self._read_at = -REFRESH

    def expectation(self, job: str) -> Expect | None:
        """The job's expectation if it guards counters (cached for REFRESH s)."""
        now = time.monotonic()
        if now - self._read_at >= REFRESH:
            with self._lock:
                if now - self._read_at >= REFRESH:
                    every = self.alerts.expectations()
                    self._guarded = {k: e for k, e in every.items() if e.volume or e.required}
                    self._read_at = now
        return self._guarded.get(job)

    def may_guard(self, job: str) -> bool:
        """Whether ``job``'s runs may be guarded: a cheap check, no query
        (``True`` when the cached expectations are due to be read again)."""
        return job in self._guarded or time.monotonic() - self._read_at >= REFRESH

    def refresh(self) -> None:
        """Forget the cache (after ``ledger.expect`` in this process)."""
        self._read_at = -REFRESH

    def guards(self, job: str) -> bool:
        """Whether ``job``'s volume is guarded (its run's start then reads
        the history)."""
        return self.may_guard(job) and self.expectation(job) is not None

    def judge(
        self,
        job: str,
        status: RunStatus,
        counters: Mapping[str, Any],
        history: dict[str, list[float]] | None,
    ) -> Verdict | None:
        """``None`` when the job is not guarded or the run is not good.
        ``history``: as the run's start read it; ``None`` (a job guarded only
        since the run started, a queued run) reads it now."""
        if status not in (RunStatus.SUCCESS, RunStatus.PARTIAL):
            return None
        expect = self.expectation(job)
        if expect is None:
            return None
        if history is None:
            history = self.alerts.volume_history(job)
        found = anomalies(counters, expect, history)
        hold = any(expect.volume[a.counter].hold_watermark for a in found if a.median is not None)
        return Verdict(expect, history, found, hold)


@dataclass(frozen=True, slots=True)
class Verdict:
    expect: Expect
    history: dict[str, list[float]]
    anomalies: list[Anomaly]
    hold_watermark: bool

    def recorded(
        self, run_id: int, counters: Mapping[str, Any]
    ) -> tuple[dict[str, list[float]] | None, dict[str, Any] | None]:
        """What the job row keeps after the run: the history with the run's
        values (a run without anomaly only; ``None`` when empty) and the
        anomaly marker (``None``: in bounds), for the finalization's job
        update (``JobEffect.volume``)."""
        history = {name: list(values) for name, values in self.history.items()}
        if not self.anomalies:
            for name, rule in self.expect.volume.items():
                value = float(counters.get(name, 0) or 0)
                history[name] = [*history.get(name, []), value][-rule.history :]
        if not self.anomalies:
            return history or None, None
        said = [a.summary for a in self.anomalies]
        return history or None, {"run_id": run_id, "summary": "; ".join(said), "anomalies": said}


def guard_final(
    guard: VolumeGuard, run: Any, status: RunStatus, end: RunEnd
) -> tuple[RunStatus, Verdict | None]:
    """The finalization hook: a good run with an anomaly ends ``partial``
    with it recorded (and, with ``hold_watermark``, no watermark move)."""
    try:
        verdict = guard.judge(run.job, status, end.counters or {}, run.volume_history)
    except Exception as exc:  # the database away: the run is finalized unguarded
        log.warning("run %s: volume guard skipped (%s)", run.id, exc)
        return status, None
    if verdict is None or not verdict.anomalies:
        return status, verdict
    said = [a.summary for a in verdict.anomalies]
    end.add_details(anomalies=said)
    if end.error_message is None:
        end.error_message = "volume: " + "; ".join(said)
    if end.error_type is None:
        end.error_type = "volume"
    if verdict.hold_watermark:
        hold_watermark(run)
    return RunStatus.PARTIAL, verdict
