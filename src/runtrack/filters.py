"""What a run listing can be narrowed by: the filters of ``list_runs``,
``count_runs`` and ``list_runs_by_page`` as one typed set of keywords
(:class:`RunFilters`), checked once into the store's :class:`RunFilter`.

Adding a filter is one key here, one field of ``RunFilter`` and its
condition in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict, Unpack

from runtrack import inputs
from runtrack.errors import InvalidInput
from runtrack.models import RunStatus
from runtrack.store.values import RunFilter

__all__ = ["RunFilters", "run_filter"]


class RunFilters(TypedDict, total=False):
    """The keyword filters of a run listing; a run must match every one given
    (``None`` or absent: not filtered)."""

    job: str | None
    provider: str | None
    #: One status or several (any of them).
    status: RunStatus | str | Sequence[RunStatus | str] | None
    triggered_by: str | None
    #: Started at or after ``since``, before ``until``.
    since: datetime | None
    until: datetime | None
    #: Part of the job key, or of the error message, ignoring case.
    job_contains: str | None
    error_contains: str | None
    #: Labels the run has, all of them (``{"team": "growth"}``).
    labels: dict[str, str] | None


FILTERS = frozenset(RunFilters.__optional_keys__)


def run_filter(also: tuple[str, ...] = (), /, **filters: Unpack[RunFilters]) -> RunFilter:
    """The filters checked, as the store takes them; :class:`InvalidInput`
    names the first bad one (an unknown name included: the error lists the
    filters and the caller's other keywords, ``also``)."""
    unknown = filters.keys() - FILTERS
    if unknown:
        allowed = ", ".join(sorted(FILTERS | set(also)))
        raise InvalidInput(", ".join(sorted(unknown)), "unknown keyword", allowed)
    status, labels = filters.get("status"), filters.get("labels")
    return RunFilter(
        job=inputs.key("job", filters.get("job"), optional=True),
        provider=inputs.key("provider", filters.get("provider"), optional=True),
        statuses=() if status is None else inputs.choices("status", status, RunStatus),
        triggered_by=inputs.key("triggered_by", filters.get("triggered_by"), optional=True),
        since=inputs.timestamp("since", filters.get("since")),
        until=inputs.timestamp("until", filters.get("until")),
        job_contains=inputs.key("job", filters.get("job_contains"), optional=True),
        error_contains=inputs.key("error_contains", filters.get("error_contains"), optional=True),
        labels=() if labels is None else tuple(inputs.labels("labels", labels).items()),
    )
