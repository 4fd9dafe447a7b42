"""A schedule per pipeline with a cron; it skips, saying why, while the pipeline is paused."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
)

if TYPE_CHECKING:  # dagster exports the class only privately
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from summit_etl.config import PipelineConfig
from summit_etl.orchestration.keys import TRIGGER_TAG, schedule_name
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store.db import connect


def pipeline_schedule(
    config: PipelineConfig, job: UnresolvedAssetJobDefinition, summit_url: str
) -> ScheduleDefinition | None:
    if config.schedule is None:
        return None

    def evaluate(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        with connect(summit_url) as conn:
            enabled = pipeline_store.is_enabled(conn, config.id, default=config.enabled)
        if not enabled:
            return SkipReason(
                f"pipeline {config.id} is paused (pipelines.enabled = false); "
                "set it to true to resume"
            )
        return RunRequest(tags={TRIGGER_TAG: "schedule"})

    return ScheduleDefinition(
        name=schedule_name(config.id),
        job=job,
        cron_schedule=config.schedule.cron,
        execution_timezone=config.schedule.timezone,
        execution_fn=evaluate,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Runs {config.id} on '{config.schedule.cron}' ({config.schedule.timezone})",
    )
