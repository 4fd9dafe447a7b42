"""`/pipelines`: list, create, read, replace, delete — validated by the same models as YAML."""

from __future__ import annotations

from psycopg import Connection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api_shim import serialize
from api_shim.errors import ApiError
from api_shim.launch import wait_for_live_cdc_runs
from api_shim.services import Services, json_body, pipeline_config, require_pipeline, services
from summit_etl.claims import ClaimConflict
from summit_etl.config import PipelineConfig
from summit_etl.lifecycle import retire_pipeline
from summit_etl.orchestration.keys import cdc_sensor_name, job_name, schedule_name
from summit_etl.registry import ConfigError, check_claims_against_table, parse_pipeline
from summit_etl.schema.transform_types import creation_problems
from summit_etl.store import pipelines as pipeline_store
from summit_etl.transform.references import check_against_source


def _validated(body: dict, path_id: str | None = None) -> PipelineConfig:
    if path_id is not None:
        body.setdefault("id", path_id)
        if body["id"] != path_id:
            raise ApiError(
                400,
                "invalid pipeline configuration",
                [f"id: {body['id']!r} does not match the path's {path_id!r}"],
            )
    try:
        return parse_pipeline(body, "request body")
    except ConfigError as exc:
        raise ApiError(400, "invalid pipeline configuration", exc.problems) from exc


def _check_columns(config: PipelineConfig) -> None:
    """Steps that read columns their rows will not have are refused now, not at the run."""
    problems = check_against_source(config)
    if problems:
        raise ApiError(400, "invalid pipeline configuration", problems)


def _check_claims(conn: Connection, svc: Services, config: PipelineConfig) -> None:
    """409 for a reserved target or a name or table another pipeline has."""
    try:
        check_claims_against_table(conn, config, svc.settings.database_url)
    except ClaimConflict as exc:
        raise ApiError(409, str(exc), {"field": exc.field}) from exc


def _publish(svc: Services, pipeline_id: str) -> None:
    """Reload the code location so the pipeline's asset, job and schedule exist at once."""
    svc.dagster.reload_location()
    svc.dagster.wait_for_job(job_name(pipeline_id))


def list_pipelines(request: Request) -> JSONResponse:
    with services(request).db.connection() as conn:
        rows = pipeline_store.list_rows(conn)
    return JSONResponse([serialize.pipeline(r) for r in rows])


def get_pipeline(request: Request) -> JSONResponse:
    with services(request).db.connection() as conn:
        row = require_pipeline(conn, request.path_params["pipeline_id"])
    return JSONResponse(serialize.pipeline(row))


async def create_pipeline(request: Request) -> JSONResponse:
    body = await json_body(request)
    config = _validated(body)
    svc = services(request)

    def create() -> pipeline_store.PipelineRow:
        _check_columns(config)
        if problems := creation_problems(config):
            raise ApiError(400, "transformations cannot handle these source columns", problems)
        with svc.db.connection() as conn:
            _check_claims(conn, svc, config)
            try:
                row = pipeline_store.create(conn, body, config.enabled)
            except pipeline_store.PipelineExists as exc:
                raise ApiError(409, str(exc)) from exc
        try:
            _publish(svc, config.id)
        except Exception:
            with svc.db.connection() as conn:  # leave nothing half-created
                pipeline_store.delete(conn, config.id)
            svc.dagster.reload_location()
            raise
        return row

    return JSONResponse(serialize.pipeline(await run_in_threadpool(create)), status_code=201)


def _owned_by_api(row: pipeline_store.PipelineRow) -> None:
    if row.origin == "file":
        raise ApiError(
            409,
            f"pipeline {row.pipeline_id!r} is defined by a YAML file in pipelines/; "
            "change the file instead",
        )


async def replace_pipeline(request: Request) -> JSONResponse:
    pipeline_id = request.path_params["pipeline_id"]
    body = await json_body(request)
    config = _validated(body, pipeline_id)
    svc = services(request)

    def replace() -> pipeline_store.PipelineRow:
        _check_columns(config)
        if problems := creation_problems(config):
            raise ApiError(400, "transformations cannot handle these source columns", problems)
        with svc.db.connection() as conn:
            _owned_by_api(require_pipeline(conn, pipeline_id))
            _check_claims(conn, svc, config)
            row = pipeline_store.replace(conn, body, config.enabled)
        if row is None:
            raise ApiError(404, f"pipeline {pipeline_id!r} not found")
        _publish(svc, pipeline_id)
        return row

    return JSONResponse(serialize.pipeline(await run_in_threadpool(replace)))


def _stop_before_retiring(svc: Services, pipeline_id: str, row: pipeline_store.PipelineRow) -> None:
    """Stop what runs on its own, so nothing starts between delete and reload; a live CDC
    run ends once it sees that, and its capture is released after."""
    owned = (schedule_name(pipeline_id), cdc_sensor_name(pipeline_id))
    schedules, sensors = svc.dagster.instigators()
    svc.dagster.stop_instigators(
        [s for s in schedules if s.status == "RUNNING" and s.name in owned],
        [s for s in sensors if s.status == "RUNNING" and s.name in owned],
    )
    try:
        cdc = pipeline_config(row).cdc
    except ApiError:  # an invalid stored configuration never ran
        cdc = None
    if cdc is not None:
        wait_for_live_cdc_runs(svc.dagster, pipeline_id, cdc.poll_interval_seconds)


def delete_pipeline(request: Request) -> Response:
    pipeline_id = request.path_params["pipeline_id"]
    svc = services(request)
    with svc.db.connection() as conn:
        row = require_pipeline(conn, pipeline_id)
        _owned_by_api(row)
        # Paused first: the summit database's word, which a live CDC run and the CDC sensor
        # honour even where Dagster's daemon undid a sensor stop (api_shim/dagster.py).
        pipeline_store.set_enabled(conn, pipeline_id, False)
    try:
        _stop_before_retiring(svc, pipeline_id, row)
    except Exception:  # Dagster down or refusing: nothing retired, the row as it was
        with svc.db.connection() as conn:
            pipeline_store.set_enabled(conn, pipeline_id, row.enabled)
        raise
    # Then everything else it owned: capture, offset, watermarks, and its row.
    retire_pipeline(row.config, svc.settings.database_url)
    svc.dagster.reload_location()
    return Response(status_code=204)
