"""OpenLineage ``RunEvent`` for a runtrack run (pure: record in, event out).

- run id: the run's ``uid`` (a UUID that never changes), so START and the
  terminal event of a run, from whatever process, name the same run;
- job: namespace = the provider (else the configured namespace), name = the job key;
- run facets: ``errorMessage`` (FAIL and ABORT), ``nominalTime`` (the run's
  data window, when it has a start), ``executionParameters`` (the run's
  params), ``processing_engine`` (runtrack and its version) and
  ``runtrack_run`` (attempt, trigger, outcome, counters, item tallies;
  schema in ``RuntrackRunFacet.json`` beside this module);
- job facet ``jobType``: a BATCH job of the RUNTRACK integration.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import attr
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    JobFacet,
    RunFacet,
    error_message_run,
    execution_parameters_run,
    job_type_job,
    nominal_time_run,
    processing_engine_run,
)

from runtrack import __version__
from runtrack.models import RunRecord, RunStatus

__all__ = ["FACET_SCHEMA_URL", "PRODUCER", "TERMINAL_EVENTS", "RuntrackRunFacet", "run_event"]

#: Who produced the events and facets: this package at this version (a package URL).
PRODUCER = f"pkg:pypi/runtrack@{__version__}"
#: Where the ``runtrack_run`` facet's JSON schema is: inside this package.
FACET_SCHEMA_URL = f"{PRODUCER}#runtrack/lineage/RuntrackRunFacet.json"

#: The OpenLineage event that reports each terminal status.
TERMINAL_EVENTS: dict[RunStatus, RunState] = {
    RunStatus.SUCCESS: RunState.COMPLETE,
    RunStatus.PARTIAL: RunState.COMPLETE,  # the run finished; its tallies say what failed
    RunStatus.FAILED: RunState.FAIL,
    RunStatus.CANCELLED: RunState.ABORT,
}


@attr.define
class RuntrackRunFacet(RunFacet):
    """runtrack's own view of a run (custom facet ``runtrack_run``)."""

    # camelCase like every OpenLineage facet field
    runtrackId: int
    status: str
    attempt: int
    triggeredBy: str
    retryOf: int | None = attr.field(default=None)
    host: str | None = attr.field(default=None)
    workerId: str | None = attr.field(default=None)
    errorType: str | None = attr.field(default=None)
    counters: dict[str, int | float] | None = attr.field(default=None)
    items: dict[str, int] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA_URL


def run_event(record: RunRecord, event_type: RunState, default_namespace: str) -> RunEvent:
    """The ``event_type`` event of the run as ``record`` holds it."""
    when = _event_time(record, event_type)
    return RunEvent(
        eventType=event_type,
        eventTime=when.isoformat(),
        run=Run(runId=record.uid, facets=_run_facets(record, event_type)),
        job=Job(
            namespace=record.provider or default_namespace,
            name=record.job,
            facets=_job_facets(),
        ),
        producer=PRODUCER,
    )


def _event_time(record: RunRecord, event_type: RunState) -> datetime:
    if event_type is RunState.START:
        return record.started_at or record.created_at
    return record.finished_at or record.started_at or record.created_at


def _run_facets(record: RunRecord, event_type: RunState) -> dict[str, RunFacet]:
    terminal = event_type is not RunState.START
    facets: dict[str, RunFacet] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=__version__,
            name="runtrack",
            openlineageAdapterVersion=__version__,
            producer=PRODUCER,
        ),
        "runtrack_run": RuntrackRunFacet(
            runtrackId=record.id,
            status=record.status.value,
            attempt=record.attempt,
            triggeredBy=record.triggered_by,
            retryOf=record.retry_of,
            host=record.host,
            workerId=record.worker_id,
            errorType=record.error_type,
            counters=dict(record.counters) if terminal else None,
            items=dict(record.items) if terminal else None,
            producer=PRODUCER,
        ),
    }
    if record.window_start is not None:
        facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=record.window_start.isoformat(),
            nominalEndTime=record.window_end.isoformat() if record.window_end else None,
            producer=PRODUCER,
        )
    if record.params:
        facets["executionParameters"] = _parameters(record.params)
    if event_type in (RunState.FAIL, RunState.ABORT):
        facets["errorMessage"] = _error(record)
    return facets


def _parameters(params: dict[str, Any]) -> RunFacet:
    return execution_parameters_run.ExecutionParametersRunFacet(
        parameters=[
            execution_parameters_run.ExecutionParameter(
                key=key, value=value if isinstance(value, str) else json.dumps(value)
            )
            for key, value in params.items()
        ],
        producer=PRODUCER,
    )


def _error(record: RunRecord) -> RunFacet:
    kind = record.error_type or record.status.value
    message = f"{kind}: {record.error_message}" if record.error_message else kind
    return error_message_run.ErrorMessageRunFacet(
        message=message,
        programmingLanguage="python",
        stackTrace=record.error_stack,
        producer=PRODUCER,
    )


def _job_facets() -> dict[str, JobFacet]:
    return {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="RUNTRACK", jobType="JOB", producer=PRODUCER
        )
    }
