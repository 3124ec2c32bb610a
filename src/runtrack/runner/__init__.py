"""The runner: run registered ingestion jobs on schedules, with retries,
provider pauses, maintenance and graceful shutdown, from any number of
processes sharing one database.

>>> runner = Runner(ledger)                                    # doctest: +SKIP
>>> @runner.job("infojobs:search", provider="infojobs", every="15m")  # doctest: +SKIP
... def search(run):
...     run.count("offers", 25)
>>> runner.run_forever()                                       # doctest: +SKIP
"""

from runtrack.runner.engine import Runner
from runtrack.runner.registry import JobSpec
from runtrack.runner.retry import Decision, ErrorClass, RetryPolicy, Verdict, default_classifier
from runtrack.runner.schedule import Cron, Every
from runtrack.runner.summary import CycleSummary

__all__ = [
    "Cron",
    "CycleSummary",
    "Decision",
    "ErrorClass",
    "Every",
    "JobSpec",
    "RetryPolicy",
    "Runner",
    "Verdict",
    "default_classifier",
]
