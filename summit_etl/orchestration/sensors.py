"""Sensors that keep the summit tables true when runs end outside the engine's hands,
and one that shows configuration errors in the Dagster UI."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import (
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from summit_etl.orchestration.keys import tagged_pipeline
from summit_etl.registry import ConfigError
from summit_etl.store import runs as run_store
from summit_etl.store.db import connect
from summit_etl.store.runs import RunError, dagster_failure


def record_run_failure(context: RunFailureSensorContext, summit_url: str) -> bool:
    """Mark the run failed in `pipeline_runs` unless the engine already did (crash, kill)."""
    run = context.dagster_run
    pipeline_id = _pipeline_of(run, summit_url)
    if pipeline_id is None:
        return False
    with connect(summit_url) as conn:
        return run_store.mark_ended_abnormally(
            conn, run.run_id, pipeline_id, "failed", _failure_of(context)
        )


def _failure_of(context: RunFailureSensorContext) -> RunError:
    """The first failed step's cause (what the engine raised), else the run's own failure."""
    for step in context.get_step_failure_events():
        if (data := step.step_failure_data) is not None:
            return dagster_failure(
                step.message or "",
                (data.error.cause or data.error).message if data.error else None,
                "ExecutionStepFailureEvent",
                step.step_key,
            )
    return dagster_failure(context.failure_event.message or "", None, "RunFailureEvent", None)


def record_run_cancel(context: RunStatusSensorContext, summit_url: str) -> bool:
    run = context.dagster_run
    pipeline_id = _pipeline_of(run, summit_url)
    if pipeline_id is None:
        return False
    with connect(summit_url) as conn:
        return run_store.mark_ended_abnormally(conn, run.run_id, pipeline_id, "cancelled", None)


def _pipeline_of(run: DagsterRun, summit_url: str) -> str | None:
    """The run's pipeline: its tag, or for a run launched without it (a materialization or
    backfill started in the Dagster UI) the pipeline its own start record names."""
    if (tagged := tagged_pipeline(run.tags)) is not None:
        return tagged
    with connect(summit_url) as conn:
        row = run_store.get_run(conn, run.run_id)
    return str(row["pipeline_id"]) if row else None


def run_record_sensors(summit_url: str) -> list[SensorDefinition]:
    """Both sensors watch every job of the code location, not only the pipelines' own: a
    backfill runs in `__ASSET_JOB`. Runs of no pipeline are left alone."""

    @run_failure_sensor(
        name="summit_record_failed_runs",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=10,
    )
    def record_failed_runs(context: RunFailureSensorContext) -> None:
        record_run_failure(context, summit_url)

    @run_status_sensor(
        name="summit_record_cancelled_runs",
        run_status=DagsterRunStatus.CANCELED,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=10,
    )
    def record_cancelled_runs(context: RunStatusSensorContext) -> None:
        record_run_cancel(context, summit_url)

    return [record_failed_runs, record_cancelled_runs]


def config_error_sensor(errors: Sequence[ConfigError]) -> SensorDefinition:
    """Every tick says which configurations were rejected and why (or that none were)."""
    report = "\n".join(str(e) for e in errors)

    @sensor(
        name="summit_config_errors",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=300,
        description="Reports pipeline configurations that failed validation and were not loaded.",
    )
    def config_errors(context: SensorEvaluationContext) -> SkipReason:
        if errors:
            context.log.error(report)
            return SkipReason(f"{len(errors)} pipeline configuration(s) rejected:\n{report}")
        return SkipReason("every pipeline configuration is valid")

    return config_errors
