"""`/health` and `/metrics`: the service and its dependencies, for people and Prometheus."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api_shim.errors import ApiError
from api_shim.models import Health, Metrics
from api_shim.serialize import answer
from api_shim.services import Services, services
from summit_etl.cdc.sources import slot_retention
from summit_etl.store import alerts as alert_store
from summit_etl.store import cdc_watermarks, quality_reports
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store import runs as run_store

VERSION = version("summit-etl")
T = TypeVar("T")


class _Cached:
    """A value recomputed at most every `ttl` seconds: dashboards and load balancers poll
    these routes hard, and Dagster's GraphQL is the slow part.

    One caller refreshes at a time; the others get the previous value meanwhile (or wait
    for the first one), so a burst of requests never turns into a burst of Dagster calls.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._value: tuple[float, Any] | None = None
        self._refreshing = threading.Lock()

    def get(self, compute: Callable[[], T]) -> T:
        hit = self._value
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        if hit and not self._refreshing.acquire(blocking=False):
            return hit[1]
        if not hit:
            self._refreshing.acquire()
            if self._value is not None:  # filled while this caller waited
                self._refreshing.release()
                return self._value[1]
        try:
            value = compute()
            self._value = (time.monotonic(), value)
            return value
        finally:
            self._refreshing.release()


_health_cache = _Cached(ttl=1.0)
_cdc_cache = _Cached(ttl=1.0)
# Asking every log_based source costs a connection each: read them less often.
_retention_cache = _Cached(ttl=5.0)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _check_database(svc: Services) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with svc.db.connection(timeout=svc.settings.health_timeout_seconds) as conn:
            conn.execute("SELECT 1")
    except ApiError as exc:
        return {"status": "down", "error": exc.detail}
    return {"status": "up", "latencyMs": round((time.perf_counter() - started) * 1000, 2)}


def _check_dagster(svc: Services) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.perf_counter()
    try:
        _, daemons_healthy, statuses = svc.dagster.health(svc.settings.health_timeout_seconds)
    except ApiError as exc:
        down = {"status": "down", "error": exc.detail}
        return down, {"status": "unknown", "error": "the Dagster webserver did not answer"}
    webserver = {"status": "up", "latencyMs": round((time.perf_counter() - started) * 1000, 2)}
    unhealthy = [s["daemonType"] for s in statuses if s["required"] and not s["healthy"]]
    daemon: dict[str, Any] = {"status": "up" if daemons_healthy else "down"}
    if unhealthy:
        daemon["error"] = f"no recent heartbeat from: {', '.join(unhealthy)}"
    return webserver, daemon


def _slot_retention(svc: Services) -> dict[str, int | None]:
    def read() -> dict[str, int | None]:
        try:
            with svc.db.connection() as conn:
                raws = [row.config for row in pipeline_store.list_rows(conn)]
        except ApiError:
            return {}
        return slot_retention(raws, svc.settings.health_timeout_seconds)

    return _retention_cache.get(read)


def _oversized_slots(svc: Services) -> list[str]:
    """Why health is degraded: slots retaining more WAL than the configured limit."""
    limit = svc.settings.cdc_slot_degraded_bytes
    return [
        f"the replication slot of pipeline {pipeline_id} retains {size} bytes of WAL "
        f"(more than ETL_CDC_SLOT_DEGRADED_BYTES = {limit}): start its CDC or delete it"
        for pipeline_id, size in sorted(_slot_retention(svc).items())
        if size is not None and size > limit
    ]


def health(request: Request) -> JSONResponse:
    svc = services(request)

    def check() -> dict[str, Any]:
        dagster, daemon = _check_dagster(svc)
        return {"database": _check_database(svc), "dagster": dagster, "daemon": daemon}

    dependencies = _health_cache.get(check)
    down = [name for name, dep in dependencies.items() if dep["status"] != "up"]
    warnings = [] if down else _oversized_slots(svc)
    body: dict[str, Any] = {
        "status": "unhealthy" if down else "degraded" if warnings else "healthy",
        "timestamp": _now(),
        "version": VERSION,
        "service": "etl-service",
        "dependencies": dependencies,
    }
    if down:
        body["error"] = f"dependency down: {', '.join(down)}"
    if warnings:
        body["warnings"] = warnings
    return answer(Health, body, status_code=503 if down else 200)


def _active_cdc_engines(svc: Services) -> int | None:
    def count() -> int | None:
        try:
            _, sensors = svc.dagster.instigators()
        except ApiError:
            return None
        return sum(1 for s in sensors if s.name.endswith("_cdc") and s.status == "RUNNING")

    return _cdc_cache.get(count)


def metrics_values(svc: Services) -> dict[str, Any]:
    active_cdc = _active_cdc_engines(svc)  # before taking a pooled connection: Dagster is slow
    with svc.db.connection() as conn:
        total, enabled = pipeline_store.counts(conn)
        values: dict[str, Any] = {"totalPipelines": total, "enabledPipelines": enabled}
        values["activeCDCEngines"] = active_cdc
        values.update(run_store.totals(conn))
        values["averageQualityScore"] = quality_reports.average_score(conn)
        values["maxCdcLagSeconds"] = cdc_watermarks.max_lag_seconds(conn)
        values["openAlerts"] = alert_store.open_counts(conn)
    values["cdcSlotRetainedBytes"] = _slot_retention(svc)
    values["timestamp"] = _now()
    return values


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


def metrics(request: Request) -> Response:
    values = metrics_values(services(request))
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
    return answer(Metrics, values)
