"""A real runner process and a real SIGTERM during a long run: the run ends
cancelled (``shutdown``) with its counters, and the process exits 0 once the
grace period is over, whether the job cooperates or ignores its run handle."""

from __future__ import annotations

import signal
import time

import pytest
from runner_processes import Workers, wait_for_counting_run

from runtrack import Ledger, RunStatus

GRACE = 0.5


@pytest.mark.parametrize("mode", ["long", "stuck"])
def test_sigterm_cancels_the_run_and_exits_0_after_the_grace(
    ledger: Ledger, workers: Workers, mode: str
) -> None:
    process = workers.start(ledger.url, mode, str(GRACE))
    running = wait_for_counting_run(ledger, f"process:{mode}", workers)

    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=GRACE + 10)
    exited = time.monotonic() - sent
    log = workers.log()
    assert code == 0, log
    # The runner's part (wait the grace, cancel, finalize, close) must take at
    # most grace + 1 s; the process exit adds the interpreter's teardown
    # (~0.3 s of CPU, seconds on a loaded machine), bounded loosely.
    returned = float(log.rsplit("runner returned at ", 1)[1].split()[0]) - sent
    assert GRACE <= returned <= GRACE + 1.0, f"run_forever returned after {returned:.2f} s"
    assert exited <= GRACE + 5.0, f"exited {exited:.2f} s after SIGTERM"

    record = ledger.get_run(running.id)
    assert record.status is RunStatus.CANCELLED
    assert record.error_type == "shutdown"
    assert record.counters["pages"] >= running.counters["pages"]
    assert not ledger.active_runs()
