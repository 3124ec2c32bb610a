"""dlt: real pipelines into a DuckDB file in tmp_path, each inside a run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtrack import Ledger, Window, current_run

dlt = pytest.importorskip("dlt")
duckdb = pytest.importorskip("duckdb")

from dlt.pipeline.exceptions import PipelineStepFailed  # noqa: E402

from runtrack.integrations.dlt import record_load, run_pipeline  # noqa: E402


@pytest.fixture(autouse=True)
def quiet_dlt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")


@pytest.fixture
def pipeline(tmp_path: Path) -> Any:
    return dlt.pipeline(
        "shop",
        destination=dlt.destinations.duckdb(str(tmp_path / "shop.duckdb")),
        dataset_name="raw",
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def shop_source(windows: list[Window], value: int = 2) -> Any:
    """A source of two tables that remembers the windows it was given."""

    def make(window: Window) -> Any:
        windows.append(window)

        @dlt.resource(table_name="orders")
        def orders() -> Iterator[list[dict[str, Any]]]:
            current_run().count("pages_fetched")  # the run is current in the source
            yield [{"id": 1, "value": 1}, {"id": 2, "value": value}, {"id": 3, "value": 3}]

        @dlt.resource(table_name="customers")
        def customers() -> Iterator[list[dict[str, Any]]]:
            yield [{"id": n, "name": f"c{n}"} for n in range(5)]

        return [orders(), customers()]

    return make


def refuse_negative_orders(path: Path) -> None:
    """Recreate ``raw.orders`` with a CHECK that the next load breaks (dlt
    already knows the table, so it loads into it as it is)."""
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE raw.orders")
    con.execute(
        "CREATE TABLE raw.orders (id BIGINT, value BIGINT CHECK (value >= 0),"
        " _dlt_load_id VARCHAR NOT NULL, _dlt_id VARCHAR NOT NULL)"
    )
    con.close()


def test_rows_loaded_per_table_become_counters_and_the_window_reaches_the_source(
    ledger: Ledger, pipeline: Any, tmp_path: Path
) -> None:
    windows: list[Window] = []
    info = run_pipeline(ledger, pipeline, shop_source(windows), provider="shop")
    assert not info.has_failed_jobs
    (first,) = ledger.list_runs(job="dlt:shop").items
    assert (first.status, first.provider) == ("success", "shop")
    assert first.counters == {
        "pages_fetched": 1,
        "rows_loaded:orders": 3,
        "rows_loaded:customers": 5,
    }
    assert windows[0] == Window(None, first.window_end)

    run_pipeline(ledger, pipeline, shop_source(windows), job="shop:orders")
    run_pipeline(ledger, pipeline, shop_source(windows), job="shop:orders")
    second, _ = ledger.list_runs(job="shop:orders").items
    assert windows[2] == Window(second.window_start, second.window_end)
    assert second.window_start is not None and second.window_start == windows[1].end
    con = duckdb.connect(str(tmp_path / "shop.duckdb"))
    assert con.execute("SELECT count(*) FROM raw.customers").fetchone() == (15,)
    con.close()


def test_failed_load_jobs_make_the_run_partial_when_dlt_does_not_raise(
    ledger: Ledger, pipeline: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_pipeline(ledger, pipeline, shop_source([]))
    refuse_negative_orders(tmp_path / "shop.duckdb")
    monkeypatch.setenv("LOAD__RAISE_ON_FAILED_JOBS", "false")
    info = run_pipeline(ledger, pipeline, shop_source([], value=-1))
    assert info.has_failed_jobs
    latest = ledger.list_runs(job="dlt:shop").items[0]
    assert latest.status == "partial"
    assert latest.counters == {"pages_fetched": 1, "rows_loaded:customers": 5}
    (error,) = (latest.error_details or {})["errors"]
    assert error["table"] == "orders" and "CHECK constraint failed" in error["message"]


def test_failed_load_jobs_fail_the_run_when_dlt_raises(
    ledger: Ledger, pipeline: Any, tmp_path: Path
) -> None:
    run_pipeline(ledger, pipeline, shop_source([]))
    refuse_negative_orders(tmp_path / "shop.duckdb")
    with pytest.raises(PipelineStepFailed):  # dlt's default: raise_on_failed_jobs
        run_pipeline(ledger, pipeline, shop_source([], value=-1))
    latest = ledger.list_runs(job="dlt:shop").items[0]
    assert latest.status == "failed"
    assert latest.error_type == "dlt.pipeline.exceptions.PipelineStepFailed"
    assert latest.counters == {"pages_fetched": 1, "rows_loaded:customers": 5}


def test_any_failed_load_message_is_recorded_as_an_error(
    ledger: Ledger, pipeline: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 (F5): a blank message gave an IndexError, a NUL InvalidInput:
    the run lost the error it was reporting."""
    run_pipeline(ledger, pipeline, shop_source([]))
    refuse_negative_orders(tmp_path / "shop.duckdb")
    monkeypatch.setenv("LOAD__RAISE_ON_FAILED_JOBS", "false")
    info = run_pipeline(ledger, pipeline, shop_source([], value=-1))
    failed = info.load_packages[0].jobs["failed_jobs"]
    job = failed[0]
    messages = {" \n\t ": "load job failed", "bad\x00byte\n": "bad\\x00byte", "x" * 5000: None}
    for text, expected in messages.items():
        failed[0] = job._replace(failed_message=text)
        with ledger.run("dlt:odd") as run:
            record_load(run, pipeline, info)
        (error,) = (ledger.get_run(run.id).error_details or {})["errors"]
        assert error["table"] == "orders"
        if expected is None:
            assert len(error["message"]) == 1000 and error["message"].startswith("xxx")
        else:
            assert error["message"] == expected
