"""The API's request and response bodies as pydantic models: requests are validated by them,
responses are built through them, and /openapi.json is generated from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from summit_etl.runs.context import RunStatus, Stage

# Timestamps leave as Python's isoformat(), as they always have.
Timestamp = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str)]


class Body(BaseModel):
    """camelCase keys as in SPEC §3; a key the model does not know is refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Request(Body):
    """A request body: unknown keys and wrong types are refused, naming the field."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ExecuteRequest(Request):
    full_reload: bool = Field(
        default=False, description="Reload everything, ignoring the watermark"
    )


class BackfillRequest(Request):
    partitioned: bool = Field(
        default=False,
        description="Backfill every partition of the pipeline's slices job (one key range "
        "each, loading at the same time) instead of one asset backfill; the pipeline needs "
        "extraction.parallelism above 1",
    )


class Error(Body):
    error: str
    details: Any = None


class RunError(Body):
    timestamp: str | None
    stage: Stage
    message: str = Field(description="What went wrong, in plain words (never a traceback)")
    details: dict[str, Any] = Field(default_factory=dict)


class RunMetrics(Body):
    model_config = ConfigDict(extra="allow")

    extraction_duration_ms: float | None = None
    transformation_duration_ms: float | None = None
    validation_duration_ms: float | None = None
    loading_duration_ms: float | None = None
    total_duration_ms: float | None = None
    throughput_records_per_second: float | None = None


class Run(Body):
    id: str = Field(description="The Dagster run id")
    pipeline_id: str
    status: RunStatus
    trigger: Literal["manual", "schedule", "cdc", "backfill"]
    full_reload: bool
    created_at: Timestamp | None
    start_time: Timestamp | None
    end_time: Timestamp | None
    records_extracted: int
    records_transformed: int
    records_filtered: int
    records_loaded: int
    records_failed: int
    records_quarantined: int
    bytes_processed: int
    errors: list[RunError]
    metrics: RunMetrics
    quality_score: float | None
    watermark_from: str | None
    watermark_to: str | None
    slice: str | None = Field(
        default=None, description="The slice ('2-of-4') a run of the slices job loaded"
    )
    dagster_run_id: str


class Queueing(Body):
    """How a launch was queued: behind the pipeline's running run, or answered with the run
    (or backfill) already waiting (one run per pipeline at a time, one waiting)."""

    queued: bool | None = None
    queued_behind: str | None = Field(default=None, description="The run it waits for")


class LaunchedRun(Run, Queueing):
    message: str | None = None


def _config_is_pipeline_config(schema: dict[str, Any]) -> None:
    # A stored configuration, described by the model that validated it (in the same document).
    schema["properties"]["config"] = {"$ref": "#/components/schemas/PipelineConfig"}


class Pipeline(Body):
    model_config = ConfigDict(json_schema_extra=_config_is_pipeline_config)

    id: str
    name: str
    enabled: bool
    origin: Literal["file", "api"]
    version: int
    created_at: Timestamp | None
    updated_at: Timestamp | None
    config: dict[str, Any]


class Dependency(Body):
    status: Literal["up", "down", "unknown"]
    latency_ms: float | None = None
    error: str | None = None


class Dependencies(Body):
    database: Dependency
    dagster: Dependency
    daemon: Dependency


class Health(Body):
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: str
    version: str
    service: Literal["etl-service"]
    dependencies: Dependencies
    error: str | None = None
    warnings: list[str] | None = Field(default=None, description="Why health is degraded")


class Metrics(Body):
    total_pipelines: int
    enabled_pipelines: int
    active_cdc_engines: int | None = Field(alias="activeCDCEngines")
    total_runs: int
    successful_runs: int
    failed_runs: int
    running_runs: int
    total_records_processed: int
    average_quality_score: float | None
    max_cdc_lag_seconds: float | None
    cdc_slot_retained_bytes: dict[str, int | None] = Field(
        description="WAL retained by each log_based pipeline's replication slot (null: unknown)"
    )
    open_alerts: dict[Literal["critical", "warning", "info"], int]
    timestamp: str


class QualityReport(Body):
    pipeline_run_id: str
    pipeline_id: str
    timestamp: str
    overall_score: float
    dimensions: dict[str, float | None]
    issues: list[dict[str, Any]]
    statistics: dict[str, Any]


class CdcSwitch(Body):
    message: str
    pipeline_id: str
    status: Literal["running", "stopped"]


class Backfill(Queueing):
    message: str
    pipeline_id: str
    backfill_id: str
    status: Literal["requested"]


class Replay(Body):
    pipeline_id: str
    run_id: str
    replay_id: str
    replayed: int
    still_quarantined: int


class Instigated(Body):
    schedules: list[str]
    sensors: list[str]
    runs: list[str]


class Stopped(Instigated):
    backfills: list[str] = Field(description="Backfills cancelled before they launched more runs")


class StopAll(Body):
    message: str
    stopped: Stopped


class ResumeAll(Body):
    message: str
    resumed: Instigated
    missing: list[str]


class VerifyExample(Body):
    kind: Literal["missing", "extra", "different"]
    key: dict[str, Any] = Field(description="The row's key; never any other value")


class Verify(Body):
    status: Literal["match", "differ"]
    source_rows: int
    target_rows: int
    missing: int
    extra: int
    different: int
    examples: list[VerifyExample]
    duration_ms: float


class Alert(Body):
    id: int
    rule: str
    severity: Literal["critical", "warning", "info"]
    pipeline_id: str | None
    status: Literal["open", "resolved"]
    message: str
    details: dict[str, Any]
    link: str | None = Field(description="The run or pipeline in the Dagster UI")
    opened_at: str
    updated_at: str
    resolved_at: str | None
    acknowledged_at: str | None
    acknowledged_by: str | None
    deliveries: list[dict[str, Any]]
