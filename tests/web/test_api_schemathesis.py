"""schemathesis against the live OpenAPI of a seeded database, served by
uvicorn: every operation (the mutating ones with the token), valid and
invalid inputs; no 5xx, and every response matches its declared schema,
status code, content type and headers. Then every operation that pages by
cursor, and the dashboard's run list, with cursors that look like ours but
hold any number or text (schemathesis alone almost never makes one)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from web_seed import AUTH, TOKEN, live_server, seed

from runtrack import Ledger
from runtrack.api import create_app
from runtrack.config import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Bounded time: the issue asks SQLite and PostgreSQL; MariaDB runs the
    per-route and hostile-input suites."""
    return str(request.param)


@pytest.fixture
def live(ledger: Ledger) -> Iterator[tuple[schemathesis.BaseSchema, str]]:
    seed(ledger)
    with live_server(create_app(ledger, Settings(api_token=TOKEN))) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json"), url


@pytest.fixture
def live_api(live: tuple[schemathesis.BaseSchema, str]) -> schemathesis.BaseSchema:
    return live[0]


def exercise(operation: APIOperation, mode: GenerationMode, examples: int) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=10)

    run()


def test_every_operation_conforms(live_api: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in live_api.get_all_operations()]
    # 13, the carried listing and forget, incidents (issue 18), workers, trigger
    # and rerun, the five backfill routes (issue 17)
    assert len(operations) == 24
    for operation in operations:
        exercise(operation, GenerationMode.POSITIVE, 20)
        if operation.query or operation.path_parameters or operation.body:
            exercise(operation, GenerationMode.NEGATIVE, 10)


def cursors() -> st.SearchStrategy[str]:
    """Cursors shaped like ours (base64 of ``v1:<id>``) around any number or
    text, padded or not, and plain random text."""
    inner = st.one_of(
        st.integers(min_value=-(2**80), max_value=2**80).map(str),
        st.sampled_from([str(2**63 - 1), str(2**63), "0", "9" * 40, "\u0662", " 7", "+7"]),
        st.text(max_size=40),
    )
    ours = inner.map(lambda v: base64.urlsafe_b64encode(f"v1:{v}".encode()).decode())
    return st.one_of(ours, ours.map(lambda c: c.rstrip("=")), st.text(max_size=250))


def test_random_cursors_are_never_a_server_error(
    live: tuple[schemathesis.BaseSchema, str],
) -> None:
    schema, url = live
    paged = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if any(p.name == "cursor" for p in op.query)
    ]
    assert len(paged) == 3  # /runs, /runs/status/{status}, /runs/{run_id}/items
    checks = [check for check in CHECKS if check is not negative_data_rejection]
    for operation in paged:

        @given(
            case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE), cursor=cursors()
        )
        @settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case, cursor: str) -> None:
            case.query = {**(case.query or {}), "cursor": cursor}
            case.call_and_validate(headers=AUTH, checks=checks, timeout=10)

        run()

    @given(cursor=cursors())
    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    def dashboard(cursor: str) -> None:
        for path in ("/runs", "/runs/1"):
            param = "cursor" if path == "/runs" else "items"
            answer = httpx.get(f"{url}{path}", params={param: cursor}, timeout=10)
            assert answer.status_code < 500, (path, cursor)

    dashboard()
