"""The Starlette application: routes, middleware, error handlers, and its services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api_shim import openapi
from api_shim.dagster import DagsterClient
from api_shim.database import Database
from api_shim.errors import http_error, unexpected_error
from api_shim.middleware import BearerTokenMiddleware, BodyLimitMiddleware, RequestLogMiddleware
from api_shim.routes import admin, alerts, cdc, pipelines, quality, runs, system, verify
from api_shim.services import Services
from api_shim.settings import ApiSettings
from summit_etl.logs import configure_logging
from summit_etl.settings import Settings


def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(openapi.document())


ROUTES = [
    Route("/health", system.health),
    Route("/metrics", system.metrics),
    Route("/openapi.json", openapi_document),
    Route("/pipelines", pipelines.list_pipelines, methods=["GET"]),
    Route("/pipelines", pipelines.create_pipeline, methods=["POST"]),
    Route("/pipelines/{pipeline_id}", pipelines.get_pipeline, methods=["GET"]),
    Route("/pipelines/{pipeline_id}", pipelines.replace_pipeline, methods=["PUT"]),
    Route("/pipelines/{pipeline_id}", pipelines.delete_pipeline, methods=["DELETE"]),
    Route("/pipelines/{pipeline_id}/execute", runs.execute, methods=["POST"]),
    Route("/pipelines/{pipeline_id}/backfill", runs.backfill, methods=["POST"]),
    Route("/pipelines/{pipeline_id}/runs", runs.list_runs, methods=["GET"]),
    Route("/pipelines/{pipeline_id}/runs/{run_id}", runs.get_run, methods=["GET"]),
    Route("/pipelines/{pipeline_id}/runs/{run_id}/cancel", runs.cancel_run, methods=["POST"]),
    Route("/pipelines/{pipeline_id}/verify", verify.verify, methods=["POST"]),
    Route("/pipelines/{pipeline_id}/cdc/start", cdc.start, methods=["POST"]),
    Route("/pipelines/{pipeline_id}/cdc/stop", cdc.stop, methods=["POST"]),
    Route(
        "/pipelines/{pipeline_id}/runs/{run_id}/quarantine/replay", quality.replay, methods=["POST"]
    ),
    Route("/quality/reports/latest", quality.latest, methods=["GET"]),
    Route("/quality/reports/{run_id}", quality.for_run, methods=["GET"]),
    Route("/alerts", alerts.list_alerts, methods=["GET"]),
    Route("/alerts/{alert_id}/ack", alerts.acknowledge, methods=["POST"]),
    Route("/admin/stop-all", admin.stop_all, methods=["POST"]),
    Route("/admin/resume-all", admin.resume_all, methods=["POST"]),
]


def create_app(settings: ApiSettings | None = None) -> Starlette:
    settings = settings or ApiSettings.from_env()
    configure_logging(Settings.from_env())  # in every worker process uvicorn starts

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = Services(
            settings=settings,
            db=Database(settings.database_url),
            dagster=DagsterClient(settings.dagster_graphql_url, settings.dagster_timeout_seconds),
        )
        app.state.services = services
        try:
            yield
        finally:
            services.db.close()
            services.dagster.close()

    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(RequestLogMiddleware),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
            Middleware(BearerTokenMiddleware, tokens=settings.tokens),
        ],
        exception_handlers={HTTPException: http_error, Exception: unexpected_error},
        lifespan=lifespan,
    )
