"""What every route reaches for: the summit database, Dagster, the settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from starlette.requests import Request

from api_shim.dagster import DagsterClient
from api_shim.database import Database
from api_shim.errors import ApiError
from api_shim.settings import ApiSettings
from summit_etl.config import PipelineConfig
from summit_etl.registry import ConfigError, parse_pipeline
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store.pipelines import PipelineRow


@dataclass
class Services:
    settings: ApiSettings
    db: Database
    dagster: DagsterClient


def services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def require_pipeline(conn: Connection, pipeline_id: str) -> PipelineRow:
    row = pipeline_store.get_row(conn, pipeline_id)
    if row is None:
        raise ApiError(404, f"pipeline {pipeline_id!r} not found")
    return row


def pipeline_config(row: PipelineRow) -> PipelineConfig:
    try:
        return parse_pipeline(
            row.config, f"pipeline {row.pipeline_id!r}", trusted=row.origin == "file"
        )
    except ConfigError as exc:
        raise ApiError(
            409, f"pipeline {row.pipeline_id!r} has an invalid stored configuration", exc.problems
        ) from exc


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"the request body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body
