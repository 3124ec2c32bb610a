"""Server-drawn charts for the job page: run durations and outcomes over time.

Pure geometry: these functions turn a job's recent runs into coordinates,
ticks and labels; ``templates/_charts.html`` draws them as inline SVG (so
Jinja escapes every label). No JavaScript and no charting library.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from runtrack.models import RunBrief, RunStatus
from runtrack.web.pages.formatting import clock, span

__all__ = ["DurationChart", "OutcomeChart", "duration_chart", "outcome_chart"]

WIDTH, HEIGHT = 760, 250
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 44
#: Stacking order of the outcome bars, bottom first.
STACK = (
    RunStatus.SUCCESS,
    RunStatus.PARTIAL,
    RunStatus.CANCELLED,
    RunStatus.FAILED,
    RunStatus.RUNNING,
    RunStatus.PENDING,
)
_TIME_STEPS = tuple(
    int(s)
    for s in (
        60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
        86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tick:
    """A labelled position on an axis (SVG user units)."""

    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class Frame:
    """The plot area (in SVG user units) with its axes."""

    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    x_label: str
    y_label: str


@dataclass(frozen=True, slots=True)
class Dot:
    """One finished run in the duration chart."""

    x: float
    y: float
    status: str
    run_id: int
    label: str


@dataclass(frozen=True, slots=True)
class Segment:
    """The runs of one status inside one bar."""

    y: float
    height: float
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class Bar:
    """One time bucket of the outcome chart, stacked by status."""

    x: float
    width: float
    label: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class DurationChart:
    """Run durations over time: dots, a trend line and a legend."""

    frame: Frame
    dots: tuple[Dot, ...]
    line: str
    legend: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class OutcomeChart:
    """Runs per time bucket stacked by status; ``bucket`` names the bucket size."""

    frame: Frame
    bars: tuple[Bar, ...]
    legend: tuple[tuple[str, int], ...]
    bucket: str


def nice_step(extent: float, target: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about
    ``target`` intervals over ``extent``."""
    raw = max(extent, 1e-9) / target
    magnitude: float = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - 10 always fits


def _value_ticks(top: float, step: float, y_of: _Scale, unit: str = "") -> tuple[Tick, ...]:
    count = round(top / step)
    return tuple(Tick(y_of(i * step), f"{i * step:g}{unit}") for i in range(count + 1))


class _Scale:
    """A linear map from a data range onto a pixel range."""

    def __init__(self, lo: float, hi: float, out_lo: float, out_hi: float) -> None:
        self.lo, self.hi, self.out_lo, self.out_hi = lo, hi, out_lo, out_hi

    def __call__(self, value: float) -> float:
        share = (value - self.lo) / (self.hi - self.lo) if self.hi != self.lo else 0.5
        return round(self.out_lo + share * (self.out_hi - self.out_lo), 1)


def _time_step(extent: float, most: int) -> int:
    for step in _TIME_STEPS:
        if extent / step <= most:
            return step
    return _TIME_STEPS[-1]


def _time_label(moment: datetime, step: int, previous: datetime | None) -> str:
    if step >= 86400:
        return moment.strftime("%b %d")
    if previous is None or previous.date() != moment.date():
        return moment.strftime("%b %d %H:%M")
    return moment.strftime("%H:%M")


def _time_ticks(lo: float, hi: float, x_of: _Scale, most: int = 6) -> tuple[Tick, ...]:
    step = _time_step(hi - lo, most)
    first = math.ceil(lo / step) * step
    ticks: list[Tick] = []
    previous: datetime | None = None
    for at in range(int(first), int(hi) + 1, step):
        moment = datetime.fromtimestamp(at, UTC)
        ticks.append(Tick(x_of(at), _time_label(moment, step, previous)))
        previous = moment
    return tuple(ticks)


def _frame(x_ticks: tuple[Tick, ...], y_ticks: tuple[Tick, ...], y_label: str) -> Frame:
    return Frame(
        WIDTH,
        HEIGHT,
        LEFT,
        TOP,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        x_ticks,
        y_ticks,
        "Time (UTC)",
        y_label,
    )


def _duration_unit(longest: float) -> tuple[str, float]:
    if longest < 120:
        return "s", 1.0
    if longest < 2 * 3600:
        return "min", 60.0
    return "h", 3600.0


def duration_chart(runs: Sequence[RunBrief]) -> DurationChart | None:
    """Each finished run as a dot at its start time and duration; ``None``
    when no run has both."""
    timed = [
        (r, max(d.total_seconds(), 0.0), r.started_at.timestamp())
        for r in sorted(runs, key=lambda r: r.id)
        if (d := r.duration) is not None and r.started_at is not None
    ]
    if not timed:
        return None
    seconds = [s for _, s, _ in timed]
    times = [t for _, _, t in timed]
    unit, size = _duration_unit(max(seconds))
    step = nice_step(max(seconds) / size or 1.0)
    top = math.ceil((max(seconds) / size) / step) * step or step
    lo, hi = min(times), max(times)
    if hi - lo < 600:  # a lone run or a burst: show ten minutes around it
        lo, hi = lo - 300, hi + 300
    x_of = _Scale(lo, hi, LEFT + 8, WIDTH - RIGHT - 8)
    y_of = _Scale(0, top, HEIGHT - BOTTOM, TOP)
    dots = tuple(
        Dot(
            x_of(t),
            y_of(s / size),
            r.status.value,
            r.id,
            f"run {r.id}: {r.status.value}, {span(s)}, started {clock(r.started_at)}",
        )
        for r, s, t in timed
    )
    line = " ".join(f"{d.x},{d.y}" for d in dots)
    frame = _frame(_time_ticks(lo, hi, x_of), _value_ticks(top, step, y_of), f"Duration ({unit})")
    return DurationChart(frame, dots, line, _legend([r for r, _, _ in timed]))


def _legend(runs: Sequence[RunBrief]) -> tuple[tuple[str, int], ...]:
    counts = Counter(r.status for r in runs)
    return tuple((s.value, counts[s]) for s in STACK if counts[s])


def outcome_chart(runs: Sequence[RunBrief], now: datetime) -> OutcomeChart | None:
    """Runs per time bucket, stacked by status; ``None`` without runs."""
    if not runs:
        return None
    first = min(r.created_at for r in runs).timestamp()
    # Another machine's clock may be ahead of ours: the last bucket holds it.
    last = max(now.timestamp(), max(r.created_at for r in runs).timestamp())
    step = _time_step(last - first, 24)
    lo = math.floor(first / step) * step
    buckets = int((last - lo) // step) + 1
    counts: list[Counter[RunStatus]] = [Counter() for _ in range(buckets)]
    for r in runs:
        counts[int((r.created_at.timestamp() - lo) // step)][r.status] += 1
    tallest = max(sum(c.values()) for c in counts)
    y_step = max(1.0, nice_step(tallest))
    top = math.ceil(tallest / y_step) * y_step
    x_of = _Scale(lo, lo + buckets * step, LEFT, WIDTH - RIGHT)
    y_of = _Scale(0, top, HEIGHT - BOTTOM, TOP)
    bars = tuple(_bar(i, c, lo, step, x_of, y_of) for i, c in enumerate(counts) if c)
    frame = _frame(
        _time_ticks(lo, lo + buckets * step, x_of), _value_ticks(top, y_step, y_of), "Runs"
    )
    return OutcomeChart(frame, bars, _legend(runs), span(timedelta(seconds=step)))


def _bar(
    index: int, counts: Counter[RunStatus], lo: float, step: int, x_of: _Scale, y_of: _Scale
) -> Bar:
    start = lo + index * step
    x, end = x_of(start), x_of(start + step)
    width = max(end - x - 2, 1.0)
    segments: list[Segment] = []
    below = 0
    for status in STACK:
        if counts[status]:
            upper = y_of(below + counts[status])
            segments.append(
                Segment(upper, round(y_of(below) - upper, 1), status.value, counts[status])
            )
            below += counts[status]
    moment = datetime.fromtimestamp(start, UTC)
    parts = ", ".join(f"{counts[s]} {s.value}" for s in STACK if counts[s])
    label = f"{clock(moment)} + {span(timedelta(seconds=step))}: {parts}"
    return Bar(round(x + 1, 1), round(width, 1), label, tuple(segments))
