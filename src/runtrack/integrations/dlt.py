"""dlt: run a dlt pipeline inside a run.

:func:`run_pipeline` opens a run, calls ``source(run.window)`` so that the
source extracts exactly the slice of data the run covers, runs the pipeline,
and records what the load did: ``rows_loaded:<table>`` counters (rows of the
tables whose load jobs all completed; dlt's own ``_dlt_*`` tables left out),
and one run error per failed load job. The outcome follows dlt's
``load.raise_on_failed_jobs``: when dlt raises (its default) the exception
goes on and the run ends ``failed``; when it does not, failed jobs make the
run ``partial``. :func:`runtrack.current_run` works inside the source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from dlt import Pipeline
from dlt.common.pipeline import LoadInfo
from dlt.pipeline.exceptions import PipelineStepFailed

from runtrack.failures import capped
from runtrack.ledger import Ledger
from runtrack.models import Window
from runtrack.run import Run

__all__ = ["run_pipeline"]

#: Load job states whose rows are not (yet) in the destination.
_NOT_LOADED: tuple[Literal["failed_jobs", "new_jobs", "started_jobs"], ...] = (
    "failed_jobs",
    "new_jobs",
    "started_jobs",
)


def run_pipeline(
    ledger: Ledger,
    pipeline: Pipeline,
    source: Callable[[Window], Any],
    *,
    job: str | None = None,
    provider: str | None = None,
    params: dict[str, Any] | None = None,
    **run_options: Any,
) -> LoadInfo:
    """Run ``pipeline`` on ``source(window)`` as one run of ``job`` (default
    ``dlt:<pipeline name>``) and return dlt's ``LoadInfo``.

    ``run_options`` go to ``pipeline.run`` (``table_name``,
    ``write_disposition``, ...). The run's window starts where the job's last
    good run ended; ending success or partial moves it on.
    """
    with ledger.run(
        job or f"dlt:{pipeline.pipeline_name}", provider=provider, params=params
    ) as run:
        data = source(run.window)
        try:
            info = pipeline.run(data, **run_options)
        except PipelineStepFailed as failed:
            if isinstance(failed.step_info, LoadInfo):  # some tables may have loaded
                record_load(run, pipeline, failed.step_info)
            raise
        record_load(run, pipeline, info)
    return info


def last_line(message: object) -> str:
    """A failed load job's message as a run error: its last non-blank line,
    capped and storable (dlt's messages end with the database's words)."""
    lines = [line for line in str(message or "").splitlines() if line.strip()]
    return capped(lines[-1].strip(), 1000) if lines else "load job failed"


def record_load(run: Run, pipeline: Pipeline, info: LoadInfo) -> None:
    """Rows loaded per table as counters, failed load jobs as run errors."""
    not_loaded: set[str] = set()
    for package in info.load_packages:
        for state in _NOT_LOADED:
            not_loaded.update(job.job_file_info.table_name for job in package.jobs[state])
        for failed in package.jobs["failed_jobs"]:
            table = failed.job_file_info.table_name
            job = failed.job_file_info.job_id()
            run.error(last_line(failed.failed_message), table=table, job=job)
    trace = pipeline.last_trace
    normalized = trace.last_normalize_info if trace is not None else None
    for table, rows in (normalized.row_counts if normalized else {}).items():
        if not table.startswith("_dlt") and table not in not_loaded:
            run.count(f"rows_loaded:{table}", rows)
