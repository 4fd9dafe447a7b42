"""The OpenAPI 3.1 document of every route, with the pipeline schema from the same
pydantic models that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from summit_etl.config import PipelineConfig

_REF = "#/components/schemas/{model}"
_ERROR = {"$ref": "#/components/schemas/Error"}

_RUN_PROPERTIES: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "description": "the Dagster run id"},
    "pipelineId": {"type": "string"},
    "status": {"enum": ["pending", "running", "success", "partial_success", "failed", "cancelled"]},
    "trigger": {"enum": ["manual", "schedule", "cdc", "backfill"]},
    "createdAt": {"type": "string", "format": "date-time"},
    "startTime": {"type": ["string", "null"], "format": "date-time"},
    "endTime": {"type": ["string", "null"], "format": "date-time"},
    **{
        k: {"type": "integer"}
        for k in (
            "recordsExtracted",
            "recordsTransformed",
            "recordsFiltered",
            "recordsLoaded",
            "recordsFailed",
            "recordsQuarantined",
            "bytesProcessed",
        )
    },
    "errors": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "timestamp": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
                "stage": {"enum": ["extraction", "transformation", "validation", "loading"]},
            },
        },
    },
    "metrics": {
        "type": "object",
        "properties": {
            k: {"type": "number"}
            for k in (
                "extractionDurationMs",
                "transformationDurationMs",
                "validationDurationMs",
                "loadingDurationMs",
                "totalDurationMs",
                "throughputRecordsPerSecond",
            )
        },
    },
    "qualityScore": {"type": ["number", "null"]},
    "dagsterRunId": {"type": "string"},
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "details": {}},
    },
    "Run": {"type": "object", "properties": _RUN_PROPERTIES},
    "Pipeline": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "enabled": {"type": "boolean"},
            "origin": {"enum": ["file", "api"]},
            "version": {"type": "integer"},
            "createdAt": {"type": "string"},
            "updatedAt": {"type": "string"},
            "config": {"$ref": "#/components/schemas/PipelineConfig"},
        },
    },
    "Health": {
        "type": "object",
        "properties": {
            "status": {"enum": ["healthy", "degraded", "unhealthy"]},
            "timestamp": {"type": "string"},
            "version": {"type": "string"},
            "service": {"const": "etl-service"},
            "dependencies": {
                "type": "object",
                "properties": {d: {"type": "object"} for d in ("database", "dagster", "daemon")},
            },
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Metrics": {
        "type": "object",
        "properties": {
            **{
                k: {"type": ["integer", "null"]}
                for k in (
                    "totalPipelines",
                    "enabledPipelines",
                    "activeCDCEngines",
                    "totalRuns",
                    "successfulRuns",
                    "failedRuns",
                    "runningRuns",
                    "totalRecordsProcessed",
                )
            },
            "averageQualityScore": {"type": ["number", "null"]},
            "maxCdcLagSeconds": {"type": ["number", "null"]},
            "cdcSlotRetainedBytes": {
                "type": "object",
                "additionalProperties": {"type": ["integer", "null"]},
            },
            "timestamp": {"type": "string"},
        },
    },
    "QualityReport": {
        "type": "object",
        "properties": {
            "pipelineRunId": {"type": "string"},
            "pipelineId": {"type": "string"},
            "timestamp": {"type": "string"},
            "overallScore": {"type": "number"},
            "dimensions": {"type": "object"},
            "issues": {"type": "array"},
            "statistics": {"type": "object"},
        },
    },
    "Switch": {
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "pipelineId": {"type": "string"},
            "status": {"type": "string"},
        },
    },
    "AdminResult": {"type": "object"},
    "Replay": {
        "type": "object",
        "properties": {
            "replayed": {"type": "integer"},
            "stillQuarantined": {"type": "integer"},
            "replayId": {"type": "string"},
        },
    },
    "Backfill": {
        "type": "object",
        "properties": {
            "backfillId": {"type": "string"},
            "pipelineId": {"type": "string"},
            "status": {"type": "string"},
        },
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str,
    ok: tuple[int, str, dict[str, Any]],
    errors: tuple[int, ...] = (),
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    mutating: bool = False,
) -> dict[str, Any]:
    status, description, schema = ok
    responses = {str(status): _json(schema, description)}
    for code in (*errors, *((401, 403) if mutating else ())):
        responses[str(code)] = _json(_ERROR, "error")
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if mutating:
        operation["security"] = [{"bearer": []}]
    return operation


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


@cache
def document() -> dict[str, Any]:
    pipeline_schema = PipelineConfig.model_json_schema(by_alias=True, ref_template=_REF)
    schemas = {**pipeline_schema.pop("$defs", {}), "PipelineConfig": pipeline_schema, **_SCHEMAS}
    pid, rid = _path("pipeline_id"), _path("run_id")
    runs = {"type": "array", "items": _ref("Run")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Summit ETL",
            "version": "1.0",
            "description": "The operators' API, translated onto Dagster (SPEC §3).",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/health": {
                "get": _op(
                    "Service and dependency health", (200, "healthy", _ref("Health")), (503,)
                )
            },
            "/metrics": {
                "get": _op(
                    "Counters as JSON, or Prometheus text with Accept: text/plain",
                    (200, "metrics", _ref("Metrics")),
                    (503,),
                )
            },
            "/pipelines": {
                "get": _op(
                    "List pipelines (YAML and API)",
                    (200, "pipelines", {"type": "array", "items": _ref("Pipeline")}),
                ),
                "post": _op(
                    "Create a pipeline",
                    (201, "created", _ref("Pipeline")),
                    (400, 409),
                    "PipelineConfig",
                    mutating=True,
                ),
            },
            "/pipelines/{pipeline_id}": {
                "get": _op(
                    "Read a pipeline", (200, "pipeline", _ref("Pipeline")), (404,), params=[pid]
                ),
                "put": _op(
                    "Replace a pipeline (version bumped)",
                    (200, "replaced", _ref("Pipeline")),
                    (400, 404, 409),
                    "PipelineConfig",
                    [pid],
                    mutating=True,
                ),
                "delete": _op(
                    "Delete a pipeline (stops its schedule and CDC)",
                    (204, "deleted", {}),
                    (404, 409),
                    params=[pid],
                    mutating=True,
                ),
            },
            "/pipelines/{pipeline_id}/execute": {
                "post": _op(
                    "Launch a run (202 pending; ?wait=true returns the finished run)",
                    (202, "launched", _ref("Run")),
                    (400, 404),
                    params=[pid, _query("wait", {"type": "boolean"})],
                    mutating=True,
                )
            },
            "/pipelines/{pipeline_id}/runs": {
                "get": _op(
                    "Runs, newest first",
                    (200, "runs", runs),
                    (400, 404),
                    params=[
                        pid,
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                        _query("status", _RUN_PROPERTIES["status"]),
                    ],
                )
            },
            "/pipelines/{pipeline_id}/runs/{run_id}": {
                "get": _op("One run", (200, "run", _ref("Run")), (404,), params=[pid, rid])
            },
            "/pipelines/{pipeline_id}/runs/{run_id}/cancel": {
                "post": _op(
                    "Terminate a run",
                    (200, "cancelled", _ref("Run")),
                    (404, 409),
                    params=[pid, rid],
                    mutating=True,
                )
            },
            "/pipelines/{pipeline_id}/cdc/start": {
                "post": _op(
                    "Start the CDC sensor",
                    (200, "started", _ref("Switch")),
                    (400, 404),
                    params=[pid],
                    mutating=True,
                )
            },
            "/pipelines/{pipeline_id}/cdc/stop": {
                "post": _op(
                    "Stop the CDC sensor",
                    (200, "stopped", _ref("Switch")),
                    (400, 404),
                    params=[pid],
                    mutating=True,
                )
            },
            "/pipelines/{pipeline_id}/backfill": {
                "post": _op(
                    "Full reload as a Dagster asset backfill",
                    (202, "launched", _ref("Backfill")),
                    (404,),
                    params=[pid],
                    mutating=True,
                )
            },
            "/pipelines/{pipeline_id}/runs/{run_id}/quarantine/replay": {
                "post": _op(
                    "Replay a run's quarantined rows that pass the current rules",
                    (200, "replayed", _ref("Replay")),
                    (404,),
                    params=[pid, rid],
                    mutating=True,
                )
            },
            "/quality/reports/latest": {
                "get": _op(
                    "The newest quality report",
                    (200, "report", _ref("QualityReport")),
                    (404,),
                    params=[_query("pipelineId", {"type": "string"})],
                )
            },
            "/quality/reports/{run_id}": {
                "get": _op(
                    "The quality report of a run",
                    (200, "report", _ref("QualityReport")),
                    (404,),
                    params=[rid],
                )
            },
            "/admin/stop-all": {
                "post": _op(
                    "Stop every schedule and CDC sensor, cancel active runs",
                    (200, "stopped", _ref("AdminResult")),
                    mutating=True,
                )
            },
            "/admin/resume-all": {
                "post": _op(
                    "Start again what stop-all stopped",
                    (200, "resumed", _ref("AdminResult")),
                    mutating=True,
                )
            },
        },
    }
