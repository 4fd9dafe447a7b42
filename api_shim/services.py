"""What every route reaches for: the summit database, Dagster, the settings, and the request's
parsed input (body and query), refused with a 400 naming the field when it is not right."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg import Connection
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from api_shim.dagster import DagsterClient
from api_shim.database import Database
from api_shim.errors import ApiError
from api_shim.settings import ApiSettings
from api_shim.snapshot import Snapshot
from summit_etl.config import PipelineConfig
from summit_etl.registry import ConfigError, parse_pipeline
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store.pipelines import PipelineRow

MAX_DEPTH = 32  # far beyond any pipeline configuration; keeps validators off the recursion limit
M = TypeVar("M", bound=BaseModel)


@dataclass
class Services:
    settings: ApiSettings
    db: Database
    dagster: DagsterClient
    snapshot: Snapshot


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


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _not_a_number(text: str) -> float:
    raise ValueError(f"{text} is not a JSON number")


def _check_values(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuse what PostgreSQL's jsonb cannot hold (NUL in text) and nesting deeper than
    MAX_DEPTH, naming where."""
    if depth > MAX_DEPTH:
        raise ApiError(
            400, f"the request body nests deeper than {MAX_DEPTH} levels at {path}", {"field": path}
        )
    if isinstance(value, str) and "\x00" in value:
        raise ApiError(400, f"{path or 'the body'} contains a NUL character", {"field": path})
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return
    for key, item in items:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            raise ApiError(
                400, f"a key in {path or 'the body'} contains a NUL character", {"field": path}
            )
        _check_values(item, where, depth + 1)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw, parse_float=_finite, parse_constant=_not_a_number)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"the request body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ApiError(400, "the request body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise ApiError(400, f"the request body nests deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # numbers out of range, NaN, Infinity
        raise ApiError(400, f"the request body has an invalid number: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    _check_values(body)
    return body


async def model_body(request: Request, model: type[M]) -> M:
    """The body validated by `model`: 400 naming each wrong or unknown field."""
    try:
        return model.model_validate(await json_body(request))
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors(include_input=False)
        ]
        raise ApiError(400, "invalid request body", problems) from exc


_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(value) or not low <= int(value) <= high:
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}", {"field": name})
    return int(value)


def query_flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false")
    if value not in ("true", "false"):
        raise ApiError(400, f"{name} must be true or false", {"field": name})
    return value == "true"
