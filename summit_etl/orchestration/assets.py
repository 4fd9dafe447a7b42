"""A pipeline as Dagster sees it: its target table as an asset, its source as an external one.

No `from __future__ import annotations` here: Dagster inspects the asset function's
annotations at definition time and needs them as real types.
"""

import re
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)

from summit_etl.config import PipelineConfig
from summit_etl.engine import RunHooks, RunOutcome, RunRequest, run_pipeline
from summit_etl.orchestration.cancel import CancelWatch
from summit_etl.orchestration.cdc_progress import CdcProgress
from summit_etl.orchestration.keys import (
    BACKFILL_TAG,
    FULL_RELOAD_TAG,
    PIPELINE_TAG,
    run_trigger,
    source_key,
    target_key,
)
from summit_etl.orchestration.resources import SummitDatabase
from summit_etl.orchestration.run_workers import forked_warm


class PipelineRunConfig(Config):
    full_reload: bool = False


def source_spec(config: PipelineConfig) -> AssetSpec:
    return AssetSpec(
        key=source_key(config),
        description=f"Source of pipeline {config.id}: {config.source.label}",
        group_name="sources",
        kinds={"postgres"},
    )


def pipeline_asset(pipeline: PipelineConfig, *, stored: bool = False) -> AssetsDefinition:
    """`stored`: the pipeline lives only in the pipelines table (see RunRequest.stored)."""

    @asset(
        key=target_key(pipeline),
        deps=[source_key(pipeline)],
        description=pipeline.description or pipeline.name,
        group_name="summit",
        kinds={"postgres"},
        metadata={
            "pipeline_id": pipeline.id,
            "source": pipeline.source.label,
            "extraction": pipeline.extraction.strategy.value,
            "loading": pipeline.loading.strategy.value,
        },
        op_tags={PIPELINE_TAG: pipeline.id},
        check_specs=quality_check_specs(pipeline),
    )
    def load_pipeline(
        context: AssetExecutionContext, config: PipelineRunConfig, summit: SummitDatabase
    ) -> MaterializeResult:
        tags = dict(context.run.tags)
        full_reload = (
            config.full_reload or tags.get(FULL_RELOAD_TAG) == "true" or BACKFILL_TAG in tags
        )
        request = RunRequest(
            context.run.run_id, trigger=run_trigger(tags), full_reload=full_reload, stored=stored
        )
        progress = CdcProgress(context, pipeline) if pipeline.cdc is not None else None
        hooks = RunHooks(
            on_batch=progress.on_batch if progress else None,
            still_wanted=progress.sensor_not_stopped if progress else None,
            cancel_requested=CancelWatch(context.instance, context.run.run_id),
        )
        try:
            outcome = run_pipeline(pipeline, request, summit.prepared_url(), hooks)
        finally:
            if progress is not None:  # the batches committed since the last observation
                progress.flush()
        metadata = outcome_metadata(outcome)
        metadata["full_reload"] = full_reload
        # Shown in the UI; pins the warm-worker hook on Dagster's process start (serve tests).
        metadata["run_worker"] = "forked warm" if forked_warm() else "spawned"
        report = outcome.quality_report
        if report is not None:
            metadata["quality_score"] = MetadataValue.float(report["overallScore"])
            metadata["quality_dimensions"] = MetadataValue.json(report["dimensions"])
        return MaterializeResult(metadata=metadata, check_results=quality_check_results(report))

    return load_pipeline


def outcome_metadata(outcome: RunOutcome) -> dict[str, Any]:
    """A run's counts, timings, watermark and schema changes as materialization metadata."""
    counts, metrics = outcome.counts, outcome.metrics
    metadata: dict[str, Any] = {
        "status": outcome.status.value,
        "records_extracted": counts.records_extracted,
        "records_transformed": counts.records_transformed,
        "records_filtered": counts.records_filtered,
        "records_loaded": counts.records_loaded,
        "rows_inserted": outcome.load.inserted if outcome.load else 0,
        "rows_updated": outcome.load.updated if outcome.load else 0,
        "rows_deleted": outcome.load.deleted if outcome.load else 0,
        "bytes_processed": counts.bytes_processed,
        **{key: MetadataValue.float(value) for key, value in metrics.items()},
    }
    if outcome.watermark_to is not None:
        metadata["watermark"] = outcome.watermark_to
    if outcome.load and outcome.load.schema_changes:
        changes = [c.as_dict() for c in outcome.load.schema_changes]
        metadata["schema_changes"] = MetadataValue.json(changes)
    return metadata


def check_name(rule_id: str) -> str:
    """A rule id as a Dagster check name (letters, digits and underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", rule_id)


def quality_check_specs(pipeline: PipelineConfig) -> list[AssetCheckSpec]:
    """Every quality rule as an asset check; `action: fail` rules block."""
    return [
        AssetCheckSpec(
            name=check_name(rule.id),
            asset=target_key(pipeline),
            blocking=rule.action == "fail",
            description=f"{rule.name or rule.id}: {rule.rule.type} ({rule.dimension.value}, "
            f"threshold {rule.threshold:g}%, action {rule.action})",
        )
        for rule in pipeline.quality.rules
    ]


def quality_check_results(report: dict[str, Any] | None) -> list[AssetCheckResult]:
    if report is None:
        return []
    return [
        AssetCheckResult(
            check_name=check_name(rule["ruleId"]),
            passed=rule["passed"],
            severity=AssetCheckSeverity.ERROR
            if rule["severity"] in ("critical", "high")
            else AssetCheckSeverity.WARN,
            metadata={
                "pass_rate": MetadataValue.float(rule["passRate"]),
                "affected_rows": rule["failed"],
                "evaluated_rows": rule["evaluated"],
                "examples": MetadataValue.json(rule["examples"]),
            },
        )
        for rule in report["rules"]
    ]
