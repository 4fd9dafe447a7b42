"""Maintenance as Dagster jobs with schedules (summit_etl.maintenance), each also launchable
by hand from the UI; the CLI runs the same functions (`summit-etl maintenance run NAME`).

No `from __future__ import annotations`: Dagster reads the op's annotations as real types.
"""

from collections.abc import Mapping

from dagster import (
    DefaultScheduleStatus,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    in_process_executor,
    job,
    op,
)

from summit_etl.config import PipelineConfig
from summit_etl.maintenance import TASKS, run_task
from summit_etl.orchestration.resources import SummitDatabase

# When each task runs (UTC): daily clean-ups at night, the weekly ones on their day.
CRONS = {
    "prune_runs": "0 3 * * *",
    "archive_changes": "30 3 * * *",
    "vacuum_watermarks": "0 4 * * 0",
    "quality_trend": "0 6 * * 1",
}


def maintenance_job_name(task: str) -> str:
    return f"summit_maintenance_{task}"


def _task_job(task: str, pipelines: Mapping[str, PipelineConfig]) -> JobDefinition:
    @op(name=task, description=(TASKS[task].__doc__ or "").strip() or None)
    def run(context: OpExecutionContext, summit: SummitDatabase) -> Output[None]:
        result = run_task(task, summit.prepared_url(), pipelines)
        context.log.info(result.summary)
        return Output(
            None,
            metadata={"summary": result.summary, "details": MetadataValue.json(result.details)},
        )

    @job(
        name=maintenance_job_name(task),
        executor_def=in_process_executor,
        description=f"Maintenance: {task.replace('_', ' ')} (see docs/operations.md)",
    )
    def maintenance() -> None:
        run()

    return maintenance


def maintenance_definitions(
    pipelines: Mapping[str, PipelineConfig],
) -> tuple[list[JobDefinition], list[ScheduleDefinition]]:
    jobs = [_task_job(task, pipelines) for task in TASKS]
    schedules = [
        ScheduleDefinition(
            name=f"{maintenance_job_name(task)}_schedule",
            job=maintenance_job,
            cron_schedule=CRONS[task],
            execution_timezone="UTC",
            default_status=DefaultScheduleStatus.RUNNING,
        )
        for task, maintenance_job in zip(TASKS, jobs, strict=True)
    ]
    return jobs, schedules
