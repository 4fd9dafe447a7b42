"""`/quality/reports`: the quality report of a run, or the newest one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from api_shim.errors import ApiError
from api_shim.services import require_pipeline, services
from summit_etl.store import quality_reports


def latest(request: Request) -> JSONResponse:
    pipeline_id = request.query_params.get("pipelineId")
    with services(request).db.connection() as conn:
        if pipeline_id is not None:
            require_pipeline(conn, pipeline_id)
        report = quality_reports.latest(conn, pipeline_id)
    if report is None:
        scope = f" for pipeline {pipeline_id}" if pipeline_id else ""
        raise ApiError(404, f"no quality report yet{scope}")
    return JSONResponse(report)


def for_run(request: Request) -> JSONResponse:
    run_id = request.path_params["run_id"]
    with services(request).db.connection() as conn:
        report = quality_reports.for_run(conn, run_id)
    if report is None:
        raise ApiError(404, f"no quality report for run {run_id}")
    return JSONResponse(report)
