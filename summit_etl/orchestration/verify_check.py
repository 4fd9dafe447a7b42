"""A `source_equal` asset check per verifiable pipeline: the target compared with its source
by key (summit_etl.verify), run on demand from the Dagster UI, not after every load (it
reads both tables whole)."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    MetadataValue,
    asset_check,
)

from summit_etl.config import PipelineConfig
from summit_etl.config.transforms import MapTransform
from summit_etl.orchestration.keys import target_key
from summit_etl.orchestration.resources import SummitDatabase
from summit_etl.verify import verify_pipeline

CHECK_NAME = "source_equal"


def verifiable(config: PipelineConfig) -> bool:
    """Whether target rows are source rows (steps, if any, only select and rename)."""
    return all(isinstance(s, MapTransform) for s in config.transformation.transformations)


def verify_check_key(config: PipelineConfig) -> AssetCheckKey:
    return AssetCheckKey(target_key(config), CHECK_NAME)


def verify_check(config: PipelineConfig) -> AssetChecksDefinition:
    @asset_check(
        asset=target_key(config),
        name=CHECK_NAME,
        description=f"Target of {config.id} equals its source {config.source.label}, key by key",
    )
    def source_equal(
        context: AssetCheckExecutionContext, summit: SummitDatabase
    ) -> AssetCheckResult:
        answer = verify_pipeline(config, summit.prepared_url())
        counts = ("sourceRows", "targetRows", "missing", "extra", "different", "durationMs")
        return AssetCheckResult(
            passed=answer["status"] == "match",
            metadata={
                **{name: answer[name] for name in counts},
                "examples": MetadataValue.json(answer["examples"]),
            },
        )

    return source_equal
