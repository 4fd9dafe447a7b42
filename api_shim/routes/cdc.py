"""`/pipelines/{id}/cdc/start|stop`: the pipeline's capture on the source and its CDC
sensor, through Dagster.

Start installs capture (trigger, or slot and publication) before it answers, so a change
committed once it has answered is captured; the sensor's first run then snapshots, and
changes the snapshot already holds are not applied again.
"""

from __future__ import annotations

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse

from api_shim.errors import ApiError
from api_shim.launch import wait_for_live_cdc_runs
from api_shim.models import CdcSwitch
from api_shim.serialize import answer
from api_shim.services import pipeline_config, require_pipeline, services
from summit_etl.cdc.logical import CaptureSetupError
from summit_etl.cdc.sources import CdcConfigError, change_source
from summit_etl.config import CdcStrategy, ExtractionStrategy, PipelineConfig
from summit_etl.orchestration.keys import cdc_sensor_name
from summit_etl.store.db import redact
from summit_etl.store.locks import CAPTURE, pipeline_lock


def _source_error(config: PipelineConfig, exc: Exception) -> str:
    return str(exc).replace(config.source.url, redact(config.source.url))


def _install_capture(config: PipelineConfig) -> None:
    try:
        change_source(config).prepare()
    except (CdcConfigError, CaptureSetupError) as exc:
        raise ApiError(409, f"cannot start CDC for {config.id}: {exc}") from exc
    except psycopg.Error as exc:
        raise ApiError(
            502,
            f"cannot start CDC for {config.id}: the source refused capture: "
            f"{_source_error(config, exc)}",
        ) from exc


def _drops_slot(config: PipelineConfig) -> bool:
    """`cdc.dropSlotOnStop`: a stopped pipeline keeps no slot (its next start snapshots)."""
    cdc = config.cdc
    return cdc is not None and cdc.strategy is CdcStrategy.log_based and cdc.drop_slot_on_stop


def _drop_slot(config: PipelineConfig, summit_url: str) -> None:
    """Under the capture lock, after the sensor stopped: a tick already under way finishes
    first, and a later one sees the sensor stopped (store/locks.py)."""
    try:
        with pipeline_lock(summit_url, CAPTURE, config.id):
            change_source(config).release()
    except psycopg.Error as exc:  # e.g. a run still reading the slot
        raise ApiError(
            409,
            f"CDC for {config.id} is stopped, but its replication slot was not dropped: "
            f"{_source_error(config, exc)}; stop again to retry",
        ) from exc


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
    if start:
        _install_capture(config)
        svc.dagster.start_instigators(sensors=[state])
    else:
        svc.dagster.stop_instigators(sensors=[state])
        if config.cdc is not None and _drops_slot(config):
            wait_for_live_cdc_runs(svc.dagster, pipeline_id, config.cdc.poll_interval_seconds)
            _drop_slot(config, svc.settings.database_url)
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
