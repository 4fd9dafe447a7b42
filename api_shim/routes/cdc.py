"""`/pipelines/{id}/cdc/start|stop`: the pipeline's CDC sensor, through Dagster."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from api_shim.errors import ApiError
from api_shim.models import CdcSwitch
from api_shim.serialize import answer
from api_shim.services import pipeline_config, require_pipeline, services
from summit_etl.config import ExtractionStrategy
from summit_etl.orchestration.keys import cdc_sensor_name


def _switch(request: Request, start: bool) -> JSONResponse:
    svc = services(request)
    pipeline_id = request.path_params["pipeline_id"]
    with svc.db.connection() as conn:
        config = pipeline_config(require_pipeline(conn, pipeline_id))
    if config.extraction.strategy is not ExtractionStrategy.cdc:
        raise ApiError(409, f"pipeline {pipeline_id} is not a CDC pipeline")
    name = cdc_sensor_name(pipeline_id)
    _, sensors = svc.dagster.instigators()
    state = next((s for s in sensors if s.name == name), None)
    if state is None:
        raise ApiError(404, f"pipeline {pipeline_id} has no CDC sensor ({name}) in Dagster")
    if start and state.status != "RUNNING":
        svc.dagster.start_sensor(name)
    elif not start and state.status == "RUNNING":
        svc.dagster.stop_sensor(state)
    status = "running" if start else "stopped"
    return answer(
        CdcSwitch,
        {
            "message": f"CDC for {pipeline_id} is {status}",
            "pipelineId": pipeline_id,
            "status": status,
        },
    )


def start(request: Request) -> JSONResponse:
    return _switch(request, start=True)


def stop(request: Request) -> JSONResponse:
    return _switch(request, start=False)
