"""`/quality/reports`: the quality report of a run, or the newest one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from api_shim.errors import ApiError
from api_shim.models import QualityReport, Replay
from api_shim.serialize import answer
from api_shim.services import pipeline_config, require_pipeline, services
from summit_etl.quality.replay import ReplayConflict, replay_quarantine
from summit_etl.store import quality_reports, quarantine


def latest(request: Request) -> JSONResponse:
    pipeline_id = request.query_params.get("pipelineId")
    with services(request).db.connection() as conn:
        if pipeline_id is not None:
            require_pipeline(conn, pipeline_id)
        report = quality_reports.latest(conn, pipeline_id)
    if report is None:
        scope = f" for pipeline {pipeline_id}" if pipeline_id else ""
        raise ApiError(404, f"no quality report yet{scope}")
    return answer(QualityReport, report)


def for_run(request: Request) -> JSONResponse:
    run_id = request.path_params["run_id"]
    with services(request).db.connection() as conn:
        report = quality_reports.for_run(conn, run_id)
    if report is None:
        raise ApiError(404, f"no quality report for run {run_id}")
    return answer(QualityReport, report)


def replay(request: Request) -> JSONResponse:
    """Load a run's quarantined rows that pass the pipeline's current rules."""
    svc = services(request)
    pipeline_id, run_id = request.path_params["pipeline_id"], request.path_params["run_id"]
    with svc.db.connection() as conn:
        config = pipeline_config(require_pipeline(conn, pipeline_id))
        if not quarantine.waiting(conn, pipeline_id, run_id):
            raise ApiError(404, f"run {run_id} has no quarantined rows waiting for replay")
    try:
        result = replay_quarantine(config, run_id, svc.settings.database_url)
    except ReplayConflict as conflict:
        raise ApiError(409, str(conflict)) from conflict
    return answer(
        Replay,
        {
            "pipelineId": pipeline_id,
            "runId": run_id,
            "replayId": result.replay_id,
            "replayed": result.replayed,
            "stillQuarantined": result.still_quarantined,
        },
    )
