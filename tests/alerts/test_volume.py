"""The volume guard (issue 18): a run whose guarded counter falls far below
the median of the job's last successful values ends partial with the anomaly
recorded; noise within bounds never flags; nothing is judged before
min_history values are known."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from sqlalchemy import event

from runtrack import Ledger, RunStatus, Volume
from runtrack.alerts import IncidentKind
from runtrack.store import dialects


def _run(ledger: Ledger, job: str, **counters: int) -> RunStatus:
    with ledger.run(job) as run:
        for name, value in counters.items():
            run.count(name, value)
    return ledger.get_run(run.id).status


def test_a_drop_to_80_after_runs_at_1000_is_flagged_and_950_is_not(manual_ledger: Ledger) -> None:
    manual_ledger.expect("shop:offers", volume={"offers_fetched": Volume(min_ratio=0.2)})
    for value in (1000, 960, 1040, 990, 1010, 955, 1045, 1000, 980, 1020):  # 1,000 +/- 5%
        assert _run(manual_ledger, "shop:offers", offers_fetched=value) is RunStatus.SUCCESS
    assert _run(manual_ledger, "shop:offers", offers_fetched=80) is RunStatus.PARTIAL
    (flagged,) = manual_ledger.list_runs(job="shop:offers", status=RunStatus.PARTIAL).items
    assert flagged.error_details is not None
    assert flagged.error_details["anomalies"] == ["offers_fetched 80 vs median 1,000 (-92%)"]
    assert flagged.error_message == "volume: offers_fetched 80 vs median 1,000 (-92%)"

    (opened,) = manual_ledger.check().opened
    assert (opened.kind, opened.run_id) == (IncidentKind.VOLUME, flagged.id)
    assert _run(manual_ledger, "shop:offers", offers_fetched=950) is RunStatus.SUCCESS
    assert [i.id for i in manual_ledger.check().resolved] == [opened.id]


def test_noise_of_20_percent_over_500_runs_is_never_flagged(manual_ledger: Ledger) -> None:
    manual_ledger.expect("shop:noisy", volume={"offers": Volume(min_ratio=0.2, max_ratio=5)})
    rng = random.Random(18)
    statuses = {
        _run(manual_ledger, "shop:noisy", offers=round(1000 * rng.uniform(0.8, 1.2)))
        for _ in range(500)
    }
    assert statuses == {RunStatus.SUCCESS}


def test_nothing_is_judged_before_min_history(manual_ledger: Ledger) -> None:
    manual_ledger.expect("shop:new", volume={"offers": Volume(min_ratio=0.5, min_history=5)})
    for _ in range(4):
        _run(manual_ledger, "shop:new", offers=1000)
    assert _run(manual_ledger, "shop:new", offers=1) is RunStatus.SUCCESS  # 4 known values
    assert _run(manual_ledger, "shop:new", offers=1) is RunStatus.PARTIAL  # 5 known: median 1000


def test_hold_watermark_and_required_counters(manual_ledger: Ledger) -> None:
    manual_ledger.expect(
        "shop:held",
        volume={"offers": Volume(min_ratio=0.5, min_history=1, hold_watermark=True)},
        required=["pages"],
    )
    assert _run(manual_ledger, "shop:held", offers=100, pages=1) is RunStatus.SUCCESS
    job = manual_ledger.get_job("shop:held")
    assert job is not None
    mark = job.watermark
    assert _run(manual_ledger, "shop:held", offers=10, pages=1) is RunStatus.PARTIAL
    job = manual_ledger.get_job("shop:held")
    assert job is not None and job.watermark == mark  # held
    assert _run(manual_ledger, "shop:held", offers=100) is RunStatus.PARTIAL  # pages is 0
    (last, *_) = manual_ledger.list_runs(job="shop:held").items
    assert last.error_details is not None
    assert last.error_details["anomalies"] == ["pages is 0 (required)"]
    assert _run(manual_ledger, "shop:held", offers=100, pages=2) is RunStatus.SUCCESS


def test_a_guarded_run_costs_no_statement_more_than_an_unguarded_one(tmp_path: Path) -> None:
    """The history rides on the start's read of the job and on the
    finalization's job update: every statement SQLite executes for a run is
    counted, and a guarded job's run executes as many as a plain one's."""
    engine = dialects.make_engine(f"sqlite:///{tmp_path}/ledger.db")
    executed: list[str] = []

    @event.listens_for(engine, "connect")
    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(executed.append)

    with Ledger(engine=engine) as ledger:
        ledger.expect("shop:guarded", volume={"offers": Volume(min_ratio=0.2, min_history=1)})
        counts = {}
        for job in ("shop:plain", "shop:guarded"):
            _run(ledger, job, offers=1000)  # the job row, the guard's cache, the pool
            executed.clear()
            assert _run(ledger, job, offers=1000) is RunStatus.SUCCESS
            counts[job] = len(executed)
        assert counts["shop:guarded"] == counts["shop:plain"], executed
        assert _run(ledger, "shop:guarded", offers=10) is RunStatus.PARTIAL  # judged
    engine.dispose()


def test_a_queued_run_is_guarded_too(manual_ledger: Ledger) -> None:
    """A run claimed from the queue did not read the history at its start:
    its guard reads it at the end."""
    manual_ledger.expect("shop:queued", volume={"offers": Volume(min_ratio=0.2, min_history=3)})
    for _ in range(3):
        _run(manual_ledger, "shop:queued", offers=1000)
    pending = manual_ledger.create_run("shop:queued")
    run = manual_ledger.start_run(run_id=pending.id)
    run.count("offers", 5)
    manual_ledger.finish_run(run)
    assert manual_ledger.get_run(pending.id).status is RunStatus.PARTIAL
