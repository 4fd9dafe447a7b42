"""The Starlette application: routes, middleware, error handlers, and its services."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import cache

from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from api_shim import middleware, openapi
from api_shim.answers import Answers
from api_shim.dagster import DagsterClient
from api_shim.database import Database
from api_shim.errors import http_error, unexpected_error
from api_shim.routes import admin, alerts, cdc, pipelines, quality, runs, system, verify
from api_shim.routing import READ_THREADS, Operation, RouteTable
from api_shim.services import Services
from api_shim.settings import ApiSettings, Role
from api_shim.snapshot import Snapshot
from summit_etl.logs import configure_logging
from summit_etl.settings import Settings


@cache
def _openapi_body(auth: bool) -> bytes:
    """Built once per process: the document depends only on the route table and on whether
    tokens are configured, and building it takes milliseconds."""
    return bytes(JSONResponse(openapi.document(TABLE, auth=auth)).body)


async def openapi_document(request: Request) -> Response:
    body = _openapi_body(bool(request.app.state.settings.tokens))
    return Response(body, media_type="application/json")


READ, OPERATE, ADMIN = Role.read, Role.operate, Role.admin
_P = "/pipelines/{pipeline_id}"

TABLE = RouteTable(
    {
        "/health": {"GET": Operation(system.health, None)},
        "/metrics": {"GET": Operation(system.metrics, READ)},
        # The document describes the API, holds no data, and is how clients find out
        # that they need a token.
        "/openapi.json": {"GET": Operation(openapi_document, None)},
        "/pipelines": {
            "GET": Operation(pipelines.list_pipelines, READ, stored=True),
            "POST": Operation(pipelines.create_pipeline, ADMIN),
        },
        _P: {
            "GET": Operation(pipelines.get_pipeline, READ, stored=True),
            "PUT": Operation(pipelines.replace_pipeline, ADMIN),
            "DELETE": Operation(pipelines.delete_pipeline, ADMIN),
        },
        f"{_P}/execute": {"POST": Operation(runs.execute, OPERATE)},
        f"{_P}/backfill": {"POST": Operation(runs.backfill, OPERATE)},
        f"{_P}/runs": {"GET": Operation(runs.list_runs, READ, stored=True)},
        f"{_P}/runs/{{run_id}}": {"GET": Operation(runs.get_run, READ, stored=True)},
        f"{_P}/runs/{{run_id}}/cancel": {"POST": Operation(runs.cancel_run, OPERATE)},
        f"{_P}/verify": {"POST": Operation(verify.verify, OPERATE)},
        f"{_P}/cdc/start": {"POST": Operation(cdc.start, OPERATE)},
        f"{_P}/cdc/stop": {"POST": Operation(cdc.stop, OPERATE)},
        f"{_P}/runs/{{run_id}}/quarantine/replay": {"POST": Operation(quality.replay, OPERATE)},
        "/quality/reports/latest": {"GET": Operation(quality.latest, READ, stored=True)},
        "/quality/reports/{run_id}": {"GET": Operation(quality.for_run, READ, stored=True)},
        "/alerts": {"GET": Operation(alerts.list_alerts, READ, stored=True)},
        "/alerts/{alert_id}/ack": {"POST": Operation(alerts.acknowledge, OPERATE)},
        "/admin/stop-all": {"POST": Operation(admin.stop_all, ADMIN)},
        "/admin/resume-all": {"POST": Operation(admin.resume_all, ADMIN)},
    }
)
ROUTES = TABLE.routes()


def required_role(scope: Scope) -> Role | None:
    return TABLE.required_role(scope, ROUTES)


def create_app(settings: ApiSettings | None = None) -> Starlette:
    settings = settings or ApiSettings.from_env()
    configure_logging(Settings.from_env())  # in every worker process uvicorn starts

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        dagster = DagsterClient(settings.dagster_graphql_url, settings.dagster_timeout_seconds)
        snapshot = Snapshot(settings, db, dagster)
        app.state.services = Services(settings=settings, db=db, dagster=dagster, snapshot=snapshot)
        app.state.answers = Answers(settings.database_url, settings.cache_bytes)
        # A reading now and every ETL_API_REFRESH_SECONDS, in the background: start-up does
        # not wait for Dagster; /health and /metrics wait for the first reading.
        refreshing = asyncio.create_task(snapshot.run())
        # What start-up built (the modules of Dagster, pydantic and the engine: some 230,000
        # objects) lives as long as the process: out of the collector's sight, a full collection
        # scans only what requests made, instead of pausing a worker for 100-150 ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            snapshot.stop()
            refreshing.cancel()
            with suppress(asyncio.CancelledError):
                await refreshing
            await app.state.answers.close()
            db.close()
            dagster.close()

    app = Starlette(
        routes=ROUTES,
        middleware=middleware.stack(settings, required_role),
        exception_handlers={HTTPException: http_error, Exception: unexpected_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.reads = CapacityLimiter(READ_THREADS)
    return app
