"""Run labels in the store: written with the run's insert, read a page at a
time, and the filters of listings.

A label filter drives a listing from the ``(key, value, run_id)`` index of
``run_labels`` (see :func:`labelled`): the newest runs with a label are a
backwards range of it, whatever the size of the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, FromClause, bindparam, insert, select
from sqlalchemy.engine import Connection

from runtrack.store.prepared import RawConnection
from runtrack.store.schema import run_labels, runs

__all__ = [
    "INSERT_LABELS",
    "RUN_WITH_LABELS",
    "label_conditions",
    "labelled",
    "labels_in",
    "labels_of",
    "write_labels",
]

#: Run ids per query of :func:`labels_of`.
CHUNK = 1000
#: Built once: it runs on the hot path's connection too (a labelled start).
INSERT_LABELS = insert(run_labels)
#: Built once, as every listing reads its page's labels (building a
#: statement and its alias costs more than running it).
LABELS_OF = (
    select(run_labels.c.run_id, run_labels.c.key, run_labels.c.value)
    .where(run_labels.c.run_id.in_(bindparam("ids", expanding=True)))
    .order_by(run_labels.c.run_id, run_labels.c.key)
)
FIRST_LABEL = run_labels.alias("first_label")
#: One run with its labels in one query: a row per label (one row whose
#: label columns are NULL for a run without any).
RUN_WITH_LABELS = (
    select(runs, run_labels.c.key.label("label_key"), run_labels.c.value.label("label_value"))
    .select_from(runs.outerjoin(run_labels, run_labels.c.run_id == runs.c.id))
    .where(runs.c.id == bindparam("p_id"))
    .order_by(run_labels.c.key)
)


def labels_in(rows: Sequence[Any]) -> dict[str, str]:
    """The labels of the rows of :data:`RUN_WITH_LABELS`."""
    return {row.label_key: row.label_value for row in rows if row.label_key is not None}


def write_labels(
    conn: Connection | RawConnection, run_id: int, labels: Mapping[str, str] | None
) -> None:
    """Write the labels of the run just inserted, in its transaction (one
    statement for all of them; nothing at all without labels)."""
    if labels:
        rows = [{"run_id": run_id, "key": key, "value": value} for key, value in labels.items()]
        conn.execute(INSERT_LABELS, rows)


def labels_of(conn: Connection, run_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """The labels of these runs, by run id (runs without labels are left
    out): one query for a page, never one per run."""
    ids = sorted(set(run_ids))
    found: dict[int, dict[str, str]] = {}
    # In chunks: every active run is one list, and SQLite bounds its parameters.
    for start in range(0, len(ids), CHUNK):
        for run_id, key, value in conn.execute(LABELS_OF, {"ids": ids[start : start + CHUNK]}):
            found.setdefault(run_id, {})[key] = value
    return found


def label_conditions(
    labels: Sequence[tuple[str, str]], run_id: Any = runs.c.id
) -> list[ColumnElement[bool]]:
    """One condition on ``run_id`` (default ``runs.id``) per label: the run has it."""
    return [
        run_id.in_(
            select(run_labels.c.run_id).where(run_labels.c.key == key, run_labels.c.value == value)
        )
        for key, value in labels
    ]


def labelled(labels: Sequence[tuple[str, str]]) -> tuple[FromClause, Any, list[Any]]:
    """A listing driven by its first label: that label's rows of
    ``run_labels``, the column to order and page by (their ``run_id``, which
    the index holds in order, so "ORDER BY it DESC LIMIT n" reads n index
    entries and no run), and the conditions: that label and the others."""
    (key, value), rest = labels[0], labels[1:]
    first = FIRST_LABEL
    conditions = [first.c.key == key, first.c.value == value]
    return first, first.c.run_id, conditions + label_conditions(rest, first.c.run_id)
