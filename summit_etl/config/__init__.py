"""The pipeline model (SPEC §2): typed, strictly validated pipeline configurations.

`pipeline` holds the pipeline and its source, extraction, loading and schedule blocks;
`transforms` and `quality` their own blocks; `environment` the `${VAR}` interpolation of
connection URLs; `policy` what the operator lets configurations do; `select` the check
of queries in configurations.
"""

from summit_etl.config.environment import (
    ForbiddenEnvironmentVariable,
    MissingEnvironmentVariable,
)
from summit_etl.config.pipeline import (
    MERGE_STRATEGIES,
    CdcConfig,
    CdcStrategy,
    ExtractionConfig,
    ExtractionStrategy,
    LoadingConfig,
    LoadStrategy,
    PipelineConfig,
    ScheduleConfig,
    SlaConfig,
    SourceConfig,
    WatermarkConfig,
)
from summit_etl.config.policy import ConfigPolicy
from summit_etl.config.quality import (
    Dimension,
    QualityConfig,
    QualityRule,
    QualityWeights,
    RuleSpec,
)
from summit_etl.config.timeouts import TimeoutsConfig
from summit_etl.config.transforms import (
    AggregateTransform,
    CastType,
    CustomTransform,
    DeduplicateTransform,
    DeriveTransform,
    FilterTransform,
    FlattenTransform,
    JoinTransform,
    MapTransform,
    NormalizeOp,
    NormalizeTransform,
    Transformation,
    TransformationConfig,
    TypecastTransform,
)

__all__ = [
    "MERGE_STRATEGIES",
    "AggregateTransform",
    "CastType",
    "CdcConfig",
    "CdcStrategy",
    "ConfigPolicy",
    "CustomTransform",
    "DeduplicateTransform",
    "DeriveTransform",
    "Dimension",
    "ExtractionConfig",
    "ExtractionStrategy",
    "FilterTransform",
    "ForbiddenEnvironmentVariable",
    "FlattenTransform",
    "JoinTransform",
    "LoadStrategy",
    "LoadingConfig",
    "MapTransform",
    "MissingEnvironmentVariable",
    "NormalizeOp",
    "NormalizeTransform",
    "PipelineConfig",
    "QualityConfig",
    "QualityRule",
    "QualityWeights",
    "RuleSpec",
    "ScheduleConfig",
    "SlaConfig",
    "SourceConfig",
    "TimeoutsConfig",
    "Transformation",
    "TransformationConfig",
    "TypecastTransform",
    "WatermarkConfig",
]
