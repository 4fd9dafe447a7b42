"""The pipeline model (SPEC §2): typed, strictly validated pipeline configurations.

Configurations come from `pipelines/*.yaml` or from the `pipelines` table (JSON bodies
of the API); both go through `PipelineConfig.model_validate`, so an unknown key, a
wrong type, a missing field or an unsafe name is rejected with the field named.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from summit_etl.identifiers import TableName, check_name

PIPELINE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class Model(BaseModel):
    """Strict base: camelCase keys as in the SPEC, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


ColumnName = Annotated[str, StringConstraints(min_length=1)]


def _columns(names: list[str], what: str) -> list[str]:
    return [check_name(n, what) for n in names]


# --- source and extraction -------------------------------------------------------------


class SourceConfig(Model):
    url: str = Field(min_length=1)
    table: str | None = None
    query: str | None = None

    @field_validator("table")
    @classmethod
    def _table_is_identifier(cls, value: str | None) -> str | None:
        if value is not None:
            TableName.parse(value, "source.table")
        return value

    @field_validator("query")
    @classmethod
    def _query_is_select(cls, value: str | None) -> str | None:
        if value is not None:
            head = value.lstrip().split(None, 1)[0].lower() if value.strip() else ""
            if head not in ("select", "with") or ";" in value.rstrip().rstrip(";"):
                raise ValueError("source.query must be a single SELECT (or WITH ... SELECT)")
        return value

    @model_validator(mode="after")
    def _table_xor_query(self) -> SourceConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("source needs exactly one of 'table' or 'query'")
        return self

    @property
    def table_name(self) -> TableName | None:
        return TableName.parse(self.table, "source.table") if self.table else None

    @property
    def label(self) -> str:
        """The source as operators name it: the table exactly as configured, or 'query'."""
        return self.table or "query"


class ExtractionStrategy(StrEnum):
    full = "full"
    incremental = "incremental"
    cdc = "cdc"


class ExtractionConfig(Model):
    strategy: ExtractionStrategy = ExtractionStrategy.full
    incremental_column: str | None = None
    batch_size: int = Field(default=50_000, ge=1, le=10_000_000)

    @field_validator("incremental_column")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        return check_name(value, "extraction.incrementalColumn") if value is not None else None


class WatermarkConfig(Model):
    type: Literal["timestamp", "numeric"] = "timestamp"
    initial_value: str | int | float | None = None
    lookback_window: float = Field(default=0, ge=0)


class CdcStrategy(StrEnum):
    timestamp = "timestamp"
    version = "version"
    trigger = "trigger"
    log_based = "log_based"


class CdcConfig(Model):
    strategy: CdcStrategy
    tracking_column: str | None = None
    primary_keys: list[str] = Field(default_factory=list)
    capture_deletes: bool = True
    include_old_values: bool = True
    poll_interval_seconds: int = Field(default=10, ge=1)
    batch_size: int = Field(default=1000, ge=1)

    @field_validator("tracking_column")
    @classmethod
    def _tracking(cls, value: str | None) -> str | None:
        return check_name(value, "cdc.trackingColumn") if value is not None else None

    @field_validator("primary_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return _columns(value, "cdc.primaryKeys")


# --- transformations ---------------------------------------------------------------------


class MapTransform(Model):
    type: Literal["map"]
    field_mapping: dict[str, str]
    include_unmapped: bool = False

    @field_validator("field_mapping")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for target, source in value.items():
            check_name(target, "map target field")
            check_name(source, "map source field")
        return value


class FilterTransform(Model):
    type: Literal["filter"]
    expression: str = Field(min_length=1)


CastType = Literal["int", "float", "string", "bool", "date", "timestamp", "decimal", "json"]


class TypecastTransform(Model):
    type: Literal["typecast"]
    type_mapping: dict[str, CastType]
    on_error: Literal["fail", "null"] = "fail"

    @field_validator("type_mapping")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for field in value:
            check_name(field, "typecast field")
        return value


NormalizeOp = Literal["trim", "lower", "upper", "empty_to_null", "date", "timestamp", "number"]


class NormalizeTransform(Model):
    type: Literal["normalize"]
    fields: dict[str, list[NormalizeOp]]

    @field_validator("fields")
    @classmethod
    def _names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for field in value:
            check_name(field, "normalize field")
        return value


class DeriveTransform(Model):
    type: Literal["derive"]
    columns: dict[str, str]

    @field_validator("columns")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for field in value:
            check_name(field, "derived column")
        return value


AggregateFunction = Literal["sum", "avg", "count", "min", "max"]


class AggregateTransform(Model):
    type: Literal["aggregate"]
    group_by: list[str] = Field(min_length=1)
    aggregations: dict[str, AggregateFunction] = Field(min_length=1)

    @field_validator("group_by")
    @classmethod
    def _group(cls, value: list[str]) -> list[str]:
        return _columns(value, "aggregate groupBy")

    @field_validator("aggregations")
    @classmethod
    def _aggs(cls, value: dict[str, str]) -> dict[str, str]:
        for field in value:
            check_name(field, "aggregate field")
        return value


class JoinTransform(Model):
    type: Literal["join"]
    url: str | None = None  # defaults to the source's url
    table: str | None = None
    query: str | None = None
    on: list[str] = Field(min_length=1)
    columns: list[str] | None = None  # lookup columns to add; default all but the keys
    how: Literal["left", "inner"] = "left"

    @field_validator("table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        if value is not None:
            TableName.parse(value, "join.table")
        return value

    @field_validator("on", "columns")
    @classmethod
    def _cols(cls, value: list[str] | None) -> list[str] | None:
        return _columns(value, "join column") if value is not None else None

    @model_validator(mode="after")
    def _table_xor_query(self) -> JoinTransform:
        if (self.table is None) == (self.query is None):
            raise ValueError("join needs exactly one of 'table' or 'query'")
        if self.query is not None:
            SourceConfig._query_is_select(self.query)
        return self


class FlattenTransform(Model):
    type: Literal["flatten"]
    field: str
    # explode: one row per array element; expand: object keys become `<field>_<key>` columns
    mode: Literal["explode", "expand"] = "explode"

    @field_validator("field")
    @classmethod
    def _field(cls, value: str) -> str:
        return check_name(value, "flatten field")


class DeduplicateTransform(Model):
    type: Literal["deduplicate"]
    keys: list[str] = Field(min_length=1)
    order_by: str | None = None  # keep the row with the greatest value; default: the last seen

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return _columns(value, "deduplicate key")

    @field_validator("order_by")
    @classmethod
    def _order(cls, value: str | None) -> str | None:
        return check_name(value, "deduplicate orderBy") if value is not None else None


class CustomTransform(Model):
    type: Literal["custom"]
    function: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] = Field(
        description="dotted path 'package.module:function' taking and returning a DataFrame"
    )


Transformation = Annotated[
    MapTransform
    | FilterTransform
    | TypecastTransform
    | NormalizeTransform
    | DeriveTransform
    | AggregateTransform
    | JoinTransform
    | FlattenTransform
    | DeduplicateTransform
    | CustomTransform,
    Field(discriminator="type"),
]


class TransformationConfig(Model):
    transformations: list[Transformation] = Field(default_factory=list)


# --- quality -----------------------------------------------------------------------------


class Dimension(StrEnum):
    completeness = "completeness"
    accuracy = "accuracy"
    consistency = "consistency"
    timeliness = "timeliness"
    validity = "validity"
    uniqueness = "uniqueness"


class QualityWeights(Model):
    completeness: float = Field(default=20, ge=0)
    accuracy: float = Field(default=25, ge=0)
    consistency: float = Field(default=15, ge=0)
    timeliness: float = Field(default=15, ge=0)
    validity: float = Field(default=15, ge=0)
    uniqueness: float = Field(default=10, ge=0)


class RuleSpec(Model):
    type: Literal[
        "not_null",
        "format",
        "range",
        "unique",
        "accepted_values",
        "type",
        "referential",
        "freshness",
        "row_count",
        "custom_sql",
    ]
    config: dict[str, Any] = Field(default_factory=dict)


class QualityRule(Model):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    name: str | None = None
    dimension: Dimension
    rule: RuleSpec
    threshold: float = Field(default=100, ge=0, le=100)
    severity: Literal["critical", "high", "medium", "low"] = "medium"
    action: Literal["warn", "quarantine", "fail"] = "warn"


class QualityConfig(Model):
    weights: QualityWeights = Field(default_factory=QualityWeights)
    min_overall_score: float | None = Field(default=None, ge=0, le=100)
    rules: list[QualityRule] = Field(default_factory=list)


# --- loading, schedule, sla --------------------------------------------------------------


class LoadStrategy(StrEnum):
    bulk = "bulk"
    append_only = "append_only"
    upsert = "upsert"
    scd_type1 = "scd_type1"
    scd_type2 = "scd_type2"
    delta = "delta"


MERGE_STRATEGIES = {
    LoadStrategy.upsert,
    LoadStrategy.scd_type1,
    LoadStrategy.scd_type2,
    LoadStrategy.delta,
}


class LoadingConfig(Model):
    strategy: LoadStrategy = LoadStrategy.bulk
    target_table: str
    target_url: str | None = None
    upsert_key: list[str] = Field(default_factory=list)
    create_table: bool = False

    @field_validator("target_table")
    @classmethod
    def _target(cls, value: str) -> str:
        TableName.parse(value, "loading.targetTable")
        return value

    @field_validator("upsert_key")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return _columns(value, "loading.upsertKey")

    @property
    def target_name(self) -> TableName:
        return TableName.parse(self.target_table, "loading.targetTable")


class ScheduleConfig(Model):
    cron: str
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(f"{value!r} is not a valid cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import available_timezones

        if value not in available_timezones():
            raise ValueError(f"unknown timezone {value!r}")
        return value


class SlaConfig(Model):
    max_duration_seconds: float | None = Field(default=None, gt=0)


# --- the pipeline ------------------------------------------------------------------------


class PipelineConfig(Model):
    id: Annotated[str, StringConstraints(pattern=PIPELINE_ID_PATTERN, max_length=100)]
    name: str = Field(min_length=1)
    description: str | None = None
    enabled: bool = True
    version: int = Field(default=1, ge=1)
    source: SourceConfig
    extraction: ExtractionConfig = Field(default_factory=ExtractionConfig)
    watermark: WatermarkConfig | None = None
    cdc: CdcConfig | None = None
    transformation: TransformationConfig = Field(default_factory=TransformationConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    loading: LoadingConfig
    schedule: ScheduleConfig | None = None
    sla: SlaConfig = Field(default_factory=SlaConfig)

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        strategy = self.extraction.strategy
        if strategy is ExtractionStrategy.incremental:
            if not self.extraction.incremental_column:
                raise ValueError(
                    "extraction.incrementalColumn is required when extraction.strategy is "
                    "'incremental'"
                )
        elif self.watermark is not None:
            raise ValueError("watermark is only allowed with extraction.strategy 'incremental'")
        if strategy is ExtractionStrategy.cdc:
            if self.cdc is None:
                raise ValueError("a 'cdc' block is required when extraction.strategy is 'cdc'")
        elif self.cdc is not None:
            raise ValueError("the 'cdc' block is only allowed with extraction.strategy 'cdc'")
        if self.loading.strategy in MERGE_STRATEGIES and not self.merge_key:
            raise ValueError(
                f"loading.upsertKey is required for loading.strategy "
                f"'{self.loading.strategy.value}'"
            )
        return self

    @property
    def merge_key(self) -> list[str]:
        """The key that identifies a row in the target: upsertKey, else the CDC keys."""
        if self.loading.upsert_key:
            return self.loading.upsert_key
        return self.cdc.primary_keys if self.cdc else []

    @property
    def watermark_config(self) -> WatermarkConfig:
        return self.watermark or WatermarkConfig()

    def target_url(self, default: str) -> str:
        return self.loading.target_url or default


# --- ${ENV} interpolation ----------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class MissingEnvironmentVariable(ValueError):
    pass


def interpolate_env(value: Any, environ: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed config."""
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {
            k: interpolate_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise MissingEnvironmentVariable(
                f"{path}: environment variable {name} is not set (and no default was given "
                f"with ${{{name}:-default}})"
            )

        return _ENV_REF.sub(substitute, value)
    return value
