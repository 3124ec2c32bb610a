"""What a measure produced, its targets, the printed table and the JSON file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.timing import Stats

__all__ = ["Measure", "Target", "markdown_report", "markdown_table", "text_table", "write_json"]


@dataclass(frozen=True, slots=True)
class Target:
    """A target from the issue: its wording and the checks that decide it."""

    label: str
    checks: tuple[tuple[str, bool], ...]

    @property
    def verdict(self) -> str:
        return "PASS" if all(ok for _, ok in self.checks) else "MISS"

    @property
    def missed(self) -> list[str]:
        return [name for name, ok in self.checks if not ok]


@dataclass(slots=True)
class Measure:
    """One line of the table.

    ``stats`` are runtrack's figures in ``unit``; ``floor`` the raw floor's,
    measured in the same process with alternating repetitions. ``ratio`` is
    runtrack's cost over the floor's (1.0 = as cheap as the floor), from the
    medians. ``cpu`` is process CPU per operation (ms), runtrack then floor.
    """

    key: str
    title: str
    unit: str
    stats: Stats
    floor: Stats | None = None
    floor_label: str = ""
    ratio: float | None = None
    cpu: tuple[float, float | None] | None = None
    target: Target | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.target.verdict if self.target else ""

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            **self.stats.as_dict(),
        }
        if self.floor is not None:
            found["floor"] = {"label": self.floor_label, **self.floor.as_dict()}
            found["ratio_to_floor"] = self.ratio
        if self.cpu is not None:
            found["cpu_ms_per_op"] = {"runtrack": self.cpu[0], "floor": self.cpu[1]}
        if self.target is not None:
            found["target"] = {
                "label": self.target.label,
                "verdict": self.target.verdict,
                "checks": [{"check": name, "ok": ok} for name, ok in self.target.checks],
            }
        if self.notes:
            found["notes"] = self.notes
        found.update(self.extra)
        return found


def _figure(value: float) -> str:
    if value >= 100_000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


_HEAD = (
    "measure",
    "unit",
    "median",
    "p95",
    "min",
    "max",
    "floor",
    "x floor",
    "target",
    "",
    "notes",
)


def _row(m: Measure) -> tuple[str, ...]:
    s = m.stats
    floor = f"{_figure(m.floor.median)} ({m.floor_label})" if m.floor else ""
    ratio = f"{m.ratio:.2f}" if m.ratio is not None else ""
    target = m.target.label if m.target else ""
    figures = (_figure(s.median), _figure(s.p95), _figure(s.min), _figure(s.max))
    return (m.title, m.unit, *figures, floor, ratio, target, m.verdict, m.notes)


def text_table(measures: list[Measure]) -> str:
    """The table printed at the end of a run."""
    rows = [_HEAD, *(_row(m) for m in measures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(measures: list[Measure]) -> str:
    """The same table in Markdown (for RESULTS.md and the README)."""
    head = (
        "measure",
        "unit",
        "median",
        "p95",
        "min",
        "max",
        "floor (median)",
        "x floor",
        "target",
        "",
        "notes",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in measures:
        cells = [cell.replace("|", "\\|") for cell in _row(m)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write never leaves half a results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def markdown_report(document: dict[str, Any], measures: list[Measure]) -> str:
    """The run as Markdown: when, where, with what, then the table."""
    m, v = document["machine"], document["versions"]
    load = m.get("load_average_at_start"), m.get("load_average_at_end")
    lines = [
        f"Run `{document['name']}` of {document['date']}: `{document['command']}`"
        f" ({document['elapsed_seconds']} s).",
        "",
        f"- Machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gib']} GiB, {m['system']};"
        f" load average at start / end: {load[0]} / {load[1]}.",
        f"- Python {v['python']}, SQLAlchemy {v['sqlalchemy']}, psycopg {v['psycopg']}"
        f" (libpq {v['libpq']}), SQLite {v['sqlite']}, PostgreSQL {v['postgresql_server']},"
        f" FastAPI {v['fastapi']}, uvicorn {v['uvicorn']}; runtrack at {v['runtrack_commit']}.",
        f"- Sizes: {json.dumps(document['parameters'])}.",
        "",
        markdown_table(measures),
        "",
        f"{document['summary']['pass']} PASS, {document['summary']['miss']} MISS.",
    ]
    return "\n".join(lines) + "\n"
