"""Finding runs by a part of the job key or of the error message (the
dashboard's job filter and error search), ignoring case, with ``%`` and
``_`` taken literally."""

from __future__ import annotations

import pytest

from runtrack import Ledger


def _failed(ledger: Ledger, job: str, message: str) -> int:
    with pytest.raises(RuntimeError), ledger.run(job) as run:
        raise RuntimeError(message)
    return run.id


def test_job_contains_and_error_contains(ledger: Ledger) -> None:
    timeout = _failed(ledger, "crm:contacts", "Read TIMEOUT after 30 s")
    quota = _failed(ledger, "crm:deals", "HTTP 429: quota 100% used")
    with ledger.run("board:crm_sync") as ok:
        pass
    with ledger.run("board:crmXsync"):
        pass

    def ids(**filters: str) -> list[int]:
        return [r.id for r in ledger.list_runs(**filters).items]  # type: ignore[arg-type]

    assert ids(job_contains="CRM:") == [quota, timeout]
    assert ids(job_contains="crm_") == [ok.id]  # '_' is not a wildcard
    assert ids(error_contains="timeout") == [timeout]
    assert ids(error_contains="100%") == [quota]  # '%' is not a wildcard
    assert ids(error_contains="0% u") == [quota]
    assert ids(job_contains="crm", error_contains="429") == [quota]
    assert ledger.count_runs(job_contains="crm") == 4
