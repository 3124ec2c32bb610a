"""runtrack: the run ledger for data-ingestion jobs.

>>> from runtrack import Ledger
>>> with Ledger("sqlite:///runtrack.db") as ledger:            # doctest: +SKIP
...     with ledger.run("infojobs:search:python-madrid", provider="infojobs") as run:
...         run.count("offers_fetched", 25)
"""

import logging

from runtrack.clock import Clock, DatabaseClock, ManualClock, OffsetClock, SystemClock
from runtrack.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    Fatal,
    InvalidInput,
    InvalidTransition,
    JobBusy,
    JobNotFound,
    LeaseLost,
    RateLimited,
    RunCancelled,
    RunNotCancellable,
    RunNotFound,
    RuntrackError,
    SchedulingError,
    Transient,
)
from runtrack.ledger import Ledger
from runtrack.models import (
    ACTIVE,
    TERMINAL,
    GroupSummary,
    ItemRecord,
    ItemStatus,
    JobRecord,
    Page,
    PauseRecord,
    PruneResult,
    RunRecord,
    RunStatus,
    Window,
)
from runtrack.run import Run, current_run
from runtrack.runner import RetryPolicy, Runner

__version__ = "0.1.0"

# The library logs under "runtrack" but never configures handlers: applications
# do. This only keeps Python's last-resort handler from printing our records.
logging.getLogger("runtrack").addHandler(logging.NullHandler())

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "Clock",
    "ConfigurationError",
    "DatabaseClock",
    "DatabaseUnavailable",
    "Fatal",
    "GroupSummary",
    "InvalidInput",
    "InvalidTransition",
    "ItemRecord",
    "ItemStatus",
    "JobBusy",
    "JobNotFound",
    "JobRecord",
    "LeaseLost",
    "Ledger",
    "ManualClock",
    "OffsetClock",
    "Page",
    "PauseRecord",
    "PruneResult",
    "RateLimited",
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
    "Window",
    "__version__",
    "current_run",
]
