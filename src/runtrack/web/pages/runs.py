"""The run list (``/runs``): filters, keyset pages, progress of active runs.

Filters arrive as plain query parameters and are validated by the ledger; a
bad one is shown above the form (400) instead of failing the page.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import QueryParams

from runtrack import inputs
from runtrack.clock import utc
from runtrack.errors import InvalidInput
from runtrack.models import ACTIVE, RunRecord, RunStatus
from runtrack.web.pages.templating import ledger_of, live_seconds, render

__all__ = ["RunQuery", "parse_time", "router"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
PAGE_SIZES = (20, 50, 100, 200)
MAX_PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class RunQuery:
    """The run list's filters as the form sent them (strings, unvalidated)."""

    job: str = ""  # a part of the job key
    error: str = ""  # a part of the error message
    provider: str = ""
    statuses: tuple[str, ...] = ()
    #: ``name:value`` each, as ``GET /api/runs?label=`` takes them.
    labels: tuple[str, ...] = ()
    since: str = ""
    until: str = ""
    cursor: str = ""
    page: int = 1
    limit: int = PAGE_SIZE

    @classmethod
    def parse(cls, params: QueryParams) -> RunQuery:
        """The filters of a query string; page numbers and sizes out of range fall back."""
        page, limit = params.get("page", "1"), params.get("limit", "")
        return cls(
            job=params.get("job", "").strip(),
            error=params.get("q", "").strip(),
            provider=params.get("provider", "").strip(),
            statuses=tuple(s for s in params.getlist("status") if s),
            labels=tuple(text for s in params.getlist("label") if (text := s.strip())),
            since=params.get("since", "").strip(),
            until=params.get("until", "").strip(),
            cursor=params.get("cursor", "").strip(),
            page=_number(page, 999_999) or 1,
            limit=_number(limit, MAX_PAGE_SIZE) or PAGE_SIZE,
        )

    def href(self, base: str, **changes: object) -> str:
        """This query as a link, with ``changes`` applied."""
        query = replace(self, **changes)  # type: ignore[arg-type]
        pairs: list[tuple[str, str]] = [
            (name, value)
            for name, value in (
                ("job", query.job),
                ("q", query.error),
                ("provider", query.provider),
                ("since", query.since),
                ("until", query.until),
                ("cursor", query.cursor),
            )
            if value
        ]
        pairs += [("status", status) for status in query.statuses]
        pairs += [("label", label) for label in query.labels]
        if query.limit != PAGE_SIZE:
            pairs.append(("limit", str(query.limit)))
        if query.page > 1:
            pairs.append(("page", str(query.page)))
        return f"{base}/runs" + (f"?{urlencode(pairs)}" if pairs else "")

    @property
    def filtered(self) -> bool:
        """Whether any filter narrows the list."""
        narrowing = (self.job, self.error, self.provider, self.statuses, self.labels)
        return any(narrowing) or bool(self.since or self.until)


def _number(text: str, most: int) -> int | None:
    """A page number or size from a query string, if it is one from 1 to ``most``
    (ASCII digits only: ``"²".isdigit()`` is true and ``int()`` refuses it)."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(most))):
        return None
    return int(text) if 0 < int(text) <= most else None


def parse_time(field: str, text: str) -> datetime | None:
    """A form's date-time (``2026-01-31T14:05``, taken as UTC) or ``None``."""
    if not text:
        return None
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        raise InvalidInput(
            field, f"{text!r} is not a date and time", "YYYY-MM-DDTHH:MM[:SS] in UTC"
        ) from None


def _valid_time(text: str) -> bool:
    try:
        parse_time("time", text)
    except InvalidInput:
        return False
    return True


def _fetch(request: Request, query: RunQuery) -> tuple[list[RunRecord], str | None]:
    page = ledger_of(request).list_runs(
        job_contains=query.job or None,
        error_contains=query.error or None,
        provider=query.provider or None,
        status=list(query.statuses) or None,
        since=parse_time("since", query.since),
        until=parse_time("until", query.until),
        labels=inputs.label_pairs("label", query.labels, ":") if query.labels else None,
        limit=query.limit,
        cursor=query.cursor or None,
    )
    return page.items, page.next_cursor


@router.get("/runs", name="dashboard_runs")
def runs_page(request: Request) -> Response:
    """Runs newest first, filtered, one keyset page at a time."""
    ledger = ledger_of(request)
    now = ledger.now()
    query = RunQuery.parse(request.query_params)
    base = request.scope.get("root_path", "").rstrip("/")
    error: str | None = None
    runs: list[RunRecord] = []
    next_cursor: str | None = None
    try:
        runs, next_cursor = _fetch(request, query)
    except InvalidInput as exc:
        error = f"Filter not applied: {exc}"
    jobs = ledger.job_providers()
    active = ledger.count_runs(status=sorted(ACTIVE)) > 0
    context = {
        "title": "Runs",
        "nav": "runs",
        "query": query,
        "runs": runs,
        "error": error,
        "job_keys": list(jobs),
        "providers": sorted({provider for provider in jobs.values() if provider}),
        "all_statuses": [status.value for status in RunStatus],
        "page_sizes": sorted({*PAGE_SIZES, query.limit}),
        "next_href": query.href(base, cursor=next_cursor, page=query.page + 1)
        if next_cursor
        else None,
        "first_href": query.href(base, cursor="", page=1) if query.cursor else None,
        "clear_href": f"{base}/runs",
        # A date-time input cannot show text it does not parse: echo only valid ones.
        "since_value": query.since if _valid_time(query.since) else "",
        "until_value": query.until if _valid_time(query.until) else "",
        "live": error is None,
        "live_seconds": live_seconds(active),
    }
    return render(request, "runs.html", context, now=now, status_code=400 if error else 200)
