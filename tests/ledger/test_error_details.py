"""``finish_run(..., error_details=...)``: the caller's details are stored
next to those of the run's non-fatal errors, on every backend."""

from __future__ import annotations

import pytest

from runtrack import InvalidInput, Ledger, RunStatus


def test_error_details_are_stored_with_the_runs_errors(ledger: Ledger) -> None:
    run = ledger.start_run("crm:sync")
    run.error("contact 7 rejected")
    final = ledger.finish_run(
        run, "failed", error="the command exited with code 3", error_type="exit_code",
        error_details={"exit_code": 3, "stderr_tail": ["token expired"]},
    )  # fmt: skip
    assert (final.status, final.error_type) == (RunStatus.FAILED, "exit_code")
    assert final.error_details == {
        "errors": [{"message": "contact 7 rejected"}],
        "error_count": 1,
        "exit_code": 3,
        "stderr_tail": ["token expired"],
    }


def test_error_details_of_a_run_finished_by_id(ledger: Ledger) -> None:
    pending = ledger.create_run("crm:sync")
    final = ledger.finish_run(pending.id, "cancelled", error_details={"why": "not needed"})
    assert final.error_details == {"why": "not needed"}


def test_error_details_must_be_a_json_mapping(ledger: Ledger) -> None:
    run = ledger.start_run("crm:sync")
    with pytest.raises(InvalidInput, match="error_details"):
        ledger.finish_run(run, "failed", error_details=["not", "a", "mapping"])  # type: ignore[arg-type]
    ledger.finish_run(run, "success")
