"""runtrack: the run ledger for data-ingestion jobs.

>>> from runtrack import Ledger
>>> with Ledger("sqlite:///runtrack.db") as ledger:            # doctest: +SKIP
...     with ledger.run("infojobs:search:python-madrid", provider="infojobs") as run:
...         run.count("offers_fetched", 25)
"""

import logging
from typing import TYPE_CHECKING, Any

from runtrack.clock import Clock, DatabaseClock, ManualClock, OffsetClock, SystemClock
from runtrack.context import current_run
from runtrack.errors import (
    BackfillBusy,
    BackfillNotFound,
    CarriedNotFound,
    ConfigurationError,
    DatabaseBusy,
    DatabaseUnavailable,
    Fatal,
    InvalidInput,
    InvalidTransition,
    JobBusy,
    JobNotFound,
    LeaseLost,
    RateLimited,
    RecordConflict,
    RunCancelled,
    RunNotCancellable,
    RunNotFound,
    RuntrackError,
    SchedulingError,
    Transient,
)
from runtrack.expectations import Expect, Volume
from runtrack.health import HealthState, JobHealth
from runtrack.ledger import Ledger
from runtrack.models import (
    ACTIVE,
    TERMINAL,
    Carried,
    CarriedItem,
    CarriedSlice,
    CarryState,
    GroupSummary,
    ItemRecord,
    ItemStatus,
    JobRecord,
    OnPartial,
    Page,
    PauseRecord,
    PruneResult,
    RunRecord,
    RunStatus,
    Window,
)
from runtrack.run import Run
from runtrack.workers import WorkerJob, WorkerRecord, WorkerRun, WorkerState

if TYPE_CHECKING:
    from runtrack.runner import RetryPolicy, Runner

__version__ = "0.1.0"

# The library logs under "runtrack" but never configures handlers: applications
# do. This only keeps Python's last-resort handler from printing our records.
logging.getLogger("runtrack").addHandler(logging.NullHandler())

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "BackfillBusy",
    "BackfillNotFound",
    "Carried",
    "CarriedItem",
    "CarriedNotFound",
    "CarriedSlice",
    "CarryState",
    "Clock",
    "ConfigurationError",
    "DatabaseBusy",
    "DatabaseClock",
    "DatabaseUnavailable",
    "Expect",
    "Fatal",
    "GroupSummary",
    "HealthState",
    "InvalidInput",
    "InvalidTransition",
    "ItemRecord",
    "ItemStatus",
    "JobBusy",
    "JobHealth",
    "JobNotFound",
    "JobRecord",
    "LeaseLost",
    "Ledger",
    "ManualClock",
    "OffsetClock",
    "OnPartial",
    "Page",
    "PauseRecord",
    "PruneResult",
    "RateLimited",
    "RecordConflict",
    "RetryPolicy",
    "Run",
    "RunCancelled",
    "RunNotCancellable",
    "RunNotFound",
    "RunRecord",
    "RunStatus",
    "Runner",
    "RuntrackError",
    "SchedulingError",
    "SystemClock",
    "Transient",
    "Volume",
    "Window",
    "WorkerJob",
    "WorkerRecord",
    "WorkerRun",
    "WorkerState",
    "__version__",
    "current_run",
]


def __getattr__(name: str) -> Any:
    # The runner (and croniter) loads on first use: code that only records
    # runs, and ``runtrack exec``, never pay for it.
    if name in ("Runner", "RetryPolicy"):
        from runtrack import runner

        value = getattr(runner, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
