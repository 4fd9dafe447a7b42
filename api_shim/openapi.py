"""The OpenAPI 3.1 document, generated: operations from the route table (api_shim/app.py),
bodies from the pydantic models that validate requests and build responses
(api_shim/models.py, and PipelineConfig for pipelines), auth from the settings in force."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api_shim import models as m
from api_shim.routing import RouteTable
from api_shim.settings import Role
from summit_etl.config import PipelineConfig
from summit_etl.config.pipeline import PIPELINE_ID_PATTERN

_REF = "#/components/schemas/{model}"
# Ids as the models make them: a path or query value of another shape is never found (404).
_ID_SCHEMAS: dict[str, dict[str, Any]] = {
    "pipeline_id": {"type": "string", "pattern": PIPELINE_ID_PATTERN},
    "run_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
    "alert_id": {"type": "string", "pattern": "^[0-9]{1,18}$"},
}


@dataclass(frozen=True)
class ArrayOf:
    model: type[BaseModel]


Body = type[BaseModel] | ArrayOf | None  # None: no content (204)


@dataclass(frozen=True)
class Doc:
    operation_id: str
    summary: str
    ok: dict[int, Body]
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[int, dict[str, Any]] = field(default_factory=dict)


def _link(operation_id: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters}


_CREATED = {
    201: {
        "GetPipeline": _link("getPipeline", pipeline_id="$response.body#/id"),
        "ExecutePipeline": _link("executePipeline", pipeline_id="$response.body#/id"),
        "ListRuns": _link("listRuns", pipeline_id="$response.body#/id"),
    }
}
_LAUNCHED = {
    status: {
        "GetRun": _link(
            "getRun", pipeline_id="$response.body#/pipelineId", run_id="$response.body#/id"
        ),
        "ListRuns": _link("listRuns", pipeline_id="$response.body#/pipelineId"),
        "GetQualityReport": _link("getQualityReport", run_id="$response.body#/id"),
    }
    for status in (200, 202)
}

DOCS: dict[tuple[str, str], Doc] = {
    ("/health", "GET"): Doc(
        "getHealth", "Service and dependency health", {200: m.Health, 503: m.Health}
    ),
    ("/metrics", "GET"): Doc(
        "getMetrics",
        "Counters as JSON, or Prometheus text with Accept: text/plain",
        {200: m.Metrics},
    ),
    ("/openapi.json", "GET"): Doc("getOpenApi", "This document", {200: None}),
    ("/pipelines", "GET"): Doc(
        "listPipelines", "Pipelines (YAML and API)", {200: ArrayOf(m.Pipeline)}
    ),
    ("/pipelines", "POST"): Doc(
        "createPipeline",
        "Create a pipeline",
        {201: m.Pipeline},
        (409,),
        body=PipelineConfig,
        links=_CREATED,
    ),
    ("/pipelines/{pipeline_id}", "GET"): Doc("getPipeline", "Read a pipeline", {200: m.Pipeline}),
    ("/pipelines/{pipeline_id}", "PUT"): Doc(
        "replacePipeline",
        "Replace a pipeline (version bumped)",
        {200: m.Pipeline},
        (409,),
        body=PipelineConfig,
    ),
    ("/pipelines/{pipeline_id}", "DELETE"): Doc(
        "deletePipeline", "Delete a pipeline (stops its schedule and CDC)", {204: None}, (409,)
    ),
    ("/pipelines/{pipeline_id}/execute", "POST"): Doc(
        "executePipeline",
        "Launch a run: 202 with the pending run; ?wait=true answers 200 with the finished run",
        {200: m.LaunchedRun, 202: m.LaunchedRun},
        (409,),
        body=m.ExecuteRequest,
        body_required=False,
        query={"wait": {"type": "boolean"}},
        links=_LAUNCHED,
    ),
    ("/pipelines/{pipeline_id}/backfill", "POST"): Doc(
        "backfillPipeline",
        "Full reload as a Dagster asset backfill, or as a backfill of every slice",
        {202: m.Backfill},
        (409,),
        body=m.BackfillRequest,
        body_required=False,
    ),
    ("/pipelines/{pipeline_id}/runs", "GET"): Doc(
        "listRuns",
        "Runs, newest first",
        {200: ArrayOf(m.Run)},
        query={
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20},
            "status": {"enum": [s.value for s in m.RunStatus]},
        },
    ),
    ("/pipelines/{pipeline_id}/runs/{run_id}", "GET"): Doc("getRun", "One run", {200: m.Run}),
    ("/pipelines/{pipeline_id}/runs/{run_id}/cancel", "POST"): Doc(
        "cancelRun", "Terminate a run", {200: m.Run}, (409,)
    ),
    ("/pipelines/{pipeline_id}/verify", "POST"): Doc(
        "verifyPipeline",
        "Compare source and target by key (counts, range checksums, then rows)",
        {200: m.Verify},
        (409, 503),
    ),
    ("/pipelines/{pipeline_id}/cdc/start", "POST"): Doc(
        "startCdc", "Start the CDC sensor", {200: m.CdcSwitch}, (409,)
    ),
    ("/pipelines/{pipeline_id}/cdc/stop", "POST"): Doc(
        "stopCdc", "Stop the CDC sensor", {200: m.CdcSwitch}, (409,)
    ),
    ("/pipelines/{pipeline_id}/runs/{run_id}/quarantine/replay", "POST"): Doc(
        "replayQuarantine",
        "Load a run's quarantined rows that pass the current rules",
        {200: m.Replay},
        (409,),
    ),
    ("/quality/reports/latest", "GET"): Doc(
        "getLatestQualityReport",
        "The newest quality report",
        {200: m.QualityReport},
        (404,),
        query={"pipelineId": _ID_SCHEMAS["pipeline_id"]},
    ),
    ("/quality/reports/{run_id}", "GET"): Doc(
        "getQualityReport", "The quality report of a run", {200: m.QualityReport}
    ),
    ("/alerts", "GET"): Doc(
        "listAlerts",
        "Alerts of the monitoring rules, newest first",
        {200: ArrayOf(m.Alert)},
        query={
            "status": {"enum": ["open", "resolved"]},
            "severity": {"enum": ["critical", "warning", "info"]},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        },
    ),
    ("/alerts/{alert_id}/ack", "POST"): Doc(
        "acknowledgeAlert", "Acknowledge an alert (the first acknowledgement stays)", {200: m.Alert}
    ),
    ("/admin/stop-all", "POST"): Doc(
        "stopAll", "Stop every schedule and CDC sensor, cancel active runs", {200: m.StopAll}
    ),
    ("/admin/resume-all", "POST"): Doc(
        "resumeAll", "Start again what stop-all stopped", {200: m.ResumeAll}
    ),
}

_RESPONSE_MODELS: list[type[BaseModel]] = [
    m.Error,
    m.Run,
    m.LaunchedRun,
    m.Pipeline,
    m.Health,
    m.Metrics,
    m.QualityReport,
    m.CdcSwitch,
    m.Backfill,
    m.Replay,
    m.StopAll,
    m.ResumeAll,
    m.Verify,
    m.Alert,
]
_REASONS = {
    400: "invalid input, named (path, query, body or Host)",
    401: "no valid bearer token",
    403: "a cross-site request, or a token whose role is too small",
    404: "no such pipeline, run or report",
    409: "conflicts with the current state",
    413: "body too large",
    415: "the body is not application/json",
    502: "Dagster refused the request",
    503: "a dependency (database, Dagster) is down",
}


def _schema_of(body: Body) -> dict[str, Any]:
    if isinstance(body, ArrayOf):
        return {"type": "array", "items": {"$ref": _REF.format(model=body.model.__name__)}}
    if body is None:
        return {}
    return {"$ref": _REF.format(model=body.__name__)}


def _components() -> dict[str, Any]:
    _, defs = models_json_schema(
        [
            *((model, "serialization") for model in _RESPONSE_MODELS),
            (m.ExecuteRequest, "validation"),
            (m.BackfillRequest, "validation"),
            (PipelineConfig, "validation"),
        ],
        by_alias=True,
        ref_template=_REF,
    )
    return dict(defs.get("$defs", {}))


_CACHE_STATUS = {
    "description": "RFC 9211: `summit-api; hit` when the answer came from the API's store of "
    "answers (valid while the database has committed nothing since it was read), "
    "`summit-api; fwd=miss` when read now, `summit-api; fwd=bypass` without a reading",
    "schema": {"type": "string"},
}


def _operation(
    path: str, method: str, role: Role | None, auth: bool, stored: bool
) -> dict[str, Any]:
    doc = DOCS[(path, method)]
    responses: dict[str, Any] = {}
    for status, body in doc.ok.items():
        response: dict[str, Any] = {"description": "OK" if status < 300 else "unhealthy"}
        if body is not None or path == "/openapi.json":
            response["content"] = {"application/json": {"schema": _schema_of(body)}}
        if stored and status == 200:
            response["headers"] = {"Cache-Status": _CACHE_STATUS}
        if status in doc.links:
            response["links"] = doc.links[status]
        responses[str(status)] = response
    errors = {400, 403, *doc.errors}
    if path != "/openapi.json":
        errors |= {502, 503}
    if "{" in path:
        errors.add(404)
    if method in ("POST", "PUT", "DELETE"):
        errors |= {413, 415}
    if auth and role is not None:
        errors |= {401, 403}
    for status in sorted(errors - set(doc.ok)):
        responses[str(status)] = {
            "description": _REASONS[status],
            "content": {"application/json": {"schema": _schema_of(m.Error)}},
        }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _ID_SCHEMAS[name]}
        for name in _path_parameters(path)
    ] + [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in doc.query.items()
    ]
    operation: dict[str, Any] = {
        "operationId": doc.operation_id,
        "summary": doc.summary,
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None:
        operation["requestBody"] = {
            "required": doc.body_required,
            "content": {"application/json": {"schema": _schema_of(doc.body)}},
        }
    if auth and role is not None:
        operation["security"] = [{"bearer": []}]
        operation["description"] = f"Needs a bearer token of role {role.name} or above."
    return operation


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


@cache
def document(table: RouteTable, auth: bool) -> dict[str, Any]:
    """`auth`: whether tokens are configured; without them no operation needs one."""
    paths: dict[str, Any] = {}
    for path, operations in table.paths.items():
        paths[path] = {
            method.lower(): _operation(path, method, operation.role, auth, operation.stored)
            for method, operation in operations.items()
        }
    components: dict[str, Any] = {"schemas": _components()}
    if auth:
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "ETL_API_TOKENS: roles read < operate < admin",
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Summit ETL",
            "version": "1.0",
            "description": "The operators' API, translated onto Dagster (SPEC §3).",
        },
        "paths": paths,
        "components": components,
    }
