"""The pipeline model (SPEC §2): typed, strictly validated pipeline configurations.

Configurations come from `pipelines/*.yaml` or from the `pipelines` table (JSON bodies
of the API); both go through `PipelineConfig.model_validate`, so an unknown key, a
wrong type, a missing field or an unsafe name is rejected with the field named.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from summit_etl.config.base import Model, qualified_table, sql_name
from summit_etl.config.environment import ConnectionUrl
from summit_etl.config.quality import QualityConfig
from summit_etl.config.select import check_select
from summit_etl.config.timeouts import TimeoutsConfig
from summit_etl.config.transforms import TransformationConfig
from summit_etl.identifiers import TableName

PIPELINE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


# --- source and extraction -------------------------------------------------------------


class SourceConfig(Model):
    url: ConnectionUrl
    table: Annotated[str, qualified_table("source.table")] | None = None
    query: str | None = None

    @field_validator("query")
    @classmethod
    def _query_is_select(cls, value: str | None) -> str | None:
        return check_select(value, "source.query") if value is not None else None

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
    incremental_column: Annotated[str, sql_name("extraction.incrementalColumn")] | None = None
    batch_size: int = Field(default=50_000, ge=1, le=10_000_000)
    parallelism: int = Field(
        default=1,
        ge=1,
        le=16,
        description="readers of a full read of a table, each on its own connection and "
        "primary-key (or ctid) range, all in one snapshot of the source",
    )
    compare_hashes: bool = Field(
        default=False,
        description="a full read into a merge first compares a hash of each source row "
        "with the target's row of its key and reads only the new and changed rows (delta: "
        "and deletes the keys the source lacks); where it cannot compare exactly, it reads "
        "every row and says why in the log",
    )


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
    tracking_column: Annotated[str, sql_name("cdc.trackingColumn")] | None = None
    primary_keys: list[Annotated[str, sql_name("cdc.primaryKeys")]] = Field(default_factory=list)
    capture_deletes: bool = True
    include_old_values: bool = True
    poll_interval_seconds: int = Field(
        default=10,
        ge=1,
        description="How often the CDC sensor probes the source while no run is live; "
        "also how often a live run re-checks that CDC is still on (sensor running, "
        "pipeline enabled) and marks the target caught up.",
    )
    batch_size: int = Field(default=1000, ge=1)
    idle_window_seconds: float = Field(
        default=30,
        ge=0,
        description="A run the CDC sensor launched keeps applying changes while they keep "
        "coming and ends once none came for this long, so most changes arrive while a run "
        "is live and skip the sensor tick, queue and launch. 0: one pass, as manual runs do.",
    )
    run_poll_ms: int = Field(
        default=200,
        ge=10,
        le=10_000,
        description="How often a live CDC run probes the source for new changes: the lag "
        "a change waits for inside a live run.",
    )
    trigger_level: Literal["row", "statement"] = Field(
        default="row",
        description="trigger strategy: capture per row (the default, cheapest for writers "
        "that change one row per statement) or per statement over its transition tables "
        "(faster for multi-row statements; docs/benchmarks.md, 'Trigger capture on the "
        "source').",
    )
    # log_based: drop the replication slot on cdc/stop, so a stopped pipeline retains no
    # WAL; the next start then snapshots again.
    drop_slot_on_stop: bool = False


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
    target_table: Annotated[str, qualified_table("loading.targetTable")]
    target_url: ConnectionUrl | None = None
    upsert_key: list[Annotated[str, sql_name("loading.upsertKey")]] = Field(default_factory=list)
    create_table: bool = False
    # Created targets declare enum columns as text instead of creating the enum types.
    enums_as_text: bool = False

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
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    # None: evolve for a target Summit created, freeze for others (schema/contract.py)
    schema_changes: Literal["evolve", "freeze", "fail"] | None = None

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
        if self.extraction.parallelism > 1 and (
            strategy is not ExtractionStrategy.full or self.source.table is None
        ):
            raise ValueError(
                "extraction.parallelism above 1 splits a full read of a table by its key: it "
                "needs extraction.strategy 'full' and source.table, not a query"
            )
        if self.extraction.compare_hashes and (
            strategy is not ExtractionStrategy.full
            or self.loading.strategy not in MERGE_STRATEGIES
            or self.extraction.parallelism > 1
            or self.transformation.transformations
        ):
            raise ValueError(
                "extraction.compareHashes compares the source's rows, as read, with the "
                "target's: it needs extraction.strategy 'full', a merge loading.strategy "
                "(upsert, scd_type1, scd_type2, delta), extraction.parallelism 1 and no "
                "transformation steps"
            )
        if self.loading.strategy in MERGE_STRATEGIES and not self.merge_key:
            raise ValueError(
                f"loading.upsertKey is required for loading.strategy "
                f"'{self.loading.strategy.value}'"
            )
        if strategy is ExtractionStrategy.cdc and (
            held := [r.id for r in self.quality.rules if r.action == "quarantine"]
        ):
            raise ValueError(
                f"quality rules {', '.join(held)} quarantine rows, which a CDC pipeline cannot "
                "do without its target drifting from the source: use action 'warn' or 'fail'"
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
