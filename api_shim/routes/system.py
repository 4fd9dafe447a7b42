"""`/health` and `/metrics`: the service and its dependencies, for people and Prometheus.

Both answer from the background snapshot (`api_shim/snapshot.py`), at most
`ETL_API_REFRESH_SECONDS` old: dashboards and load balancers poll them hard, and no request
waits on Dagster or on a dependency that hangs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from starlette.requests import Request
from starlette.responses import Response

from api_shim.errors import DependencyDown
from api_shim.services import services

JSON = "application/json"


async def health(request: Request) -> Response:
    status, body = (await services(request).snapshot.current()).health
    return Response(body, status_code=status, media_type=JSON)


_PROMETHEUS = {
    "totalPipelines": "summit_pipelines",
    "enabledPipelines": "summit_pipelines_enabled",
    "activeCDCEngines": "summit_cdc_engines_active",
    "totalRuns": "summit_runs",
    "successfulRuns": "summit_runs_successful",
    "failedRuns": "summit_runs_failed",
    "runningRuns": "summit_runs_running",
    "totalRecordsProcessed": "summit_records_processed",
    "averageQualityScore": "summit_quality_score_average",
    "maxCdcLagSeconds": "summit_cdc_lag_seconds_max",
}


async def metrics(request: Request) -> Response:
    reading = await services(request).snapshot.current()
    if reading.metrics is None or reading.metrics_json is None:
        database = reading.dependencies["database"]
        raise DependencyDown("database", database.get("error") or "no answer")
    values = reading.metrics
    accept = request.headers.get("accept", "")
    if "application/openmetrics-text" in accept or "text/plain" in accept:
        registry = CollectorRegistry()
        for key, name in _PROMETHEUS.items():
            if values[key] is not None:
                Gauge(name, f"Summit ETL {key}", registry=registry).set(values[key])
        alerts = Gauge("summit_alerts_open", "Open alerts", ["severity"], registry=registry)
        for severity, count in values["openAlerts"].items():
            alerts.labels(severity=severity).set(count)
        retained = Gauge(
            "summit_cdc_slot_retained_bytes",
            "WAL retained by a log_based pipeline's replication slot",
            ["pipeline"],
            registry=registry,
        )
        for pipeline_id, size in values["cdcSlotRetainedBytes"].items():
            if size is not None:
                retained.labels(pipeline=pipeline_id).set(size)
        if "application/openmetrics-text" in accept:
            return Response(generate_openmetrics(registry), media_type=OPENMETRICS)
        return Response(
            generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8"
        )
    return Response(reading.metrics_json, media_type=JSON)
