"""Runs of a pipeline: launch (execute, backfill) and cancel through Dagster; list and read
from `pipeline_runs` alone."""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from api_shim import serialize
from api_shim.errors import ApiError
from api_shim.launch import Launch, launch_backfill, launch_run
from api_shim.models import Backfill, BackfillRequest, ExecuteRequest, LaunchedRun
from api_shim.services import (
    Services,
    model_body,
    pipeline_config,
    query_flag,
    query_int,
    require_pipeline,
    services,
)
from summit_etl.config.slicing import slice_refusal
from summit_etl.orchestration.keys import slices_job_name, target_key
from summit_etl.store import runs as run_store
from summit_etl.store.runs import TERMINAL_STATUSES

RUN_STATUSES = ("pending", "running", "success", "partial_success", "failed", "cancelled")
MAX_LIMIT = 1000


async def execute(request: Request) -> JSONResponse:
    pipeline_id = request.path_params["pipeline_id"]
    full_reload = (await model_body(request, ExecuteRequest)).full_reload
    wait = query_flag(request, "wait")
    svc = services(request)

    def launch() -> tuple[dict[str, Any], dict[str, Any]]:
        with svc.db.connection() as conn:
            require_pipeline(conn, pipeline_id)
            launched = launch_run(conn, svc.dagster, pipeline_id, full_reload)
            row = run_store.get_run(conn, launched.id)
        if row is None:  # pragma: no cover - launch_run records it
            raise ApiError(500, f"run {launched.id} was not recorded")
        return (_wait_for_end(svc, row) if wait else row), launched.note("run")

    row, note = await run_in_threadpool(launch)
    done = row["status"] in TERMINAL_STATUSES
    return serialize.answer(LaunchedRun, {**serialize.run(row), **note}, 200 if done else 202)


def _wait_for_end(svc: Services, row: dict[str, Any]) -> dict[str, Any]:
    """Poll the run's record until it ends; a run Dagster ended without the engine recording
    it (a crash) is closed by the background refresh (api_shim/reconcile.py)."""
    deadline = time.monotonic() + svc.settings.wait_timeout_seconds
    while row["status"] not in TERMINAL_STATUSES and time.monotonic() < deadline:
        time.sleep(0.25)
        with svc.db.connection() as conn:
            row = run_store.get_run(conn, row["id"]) or row
    return row


def list_runs(request: Request) -> JSONResponse:
    params = request.query_params
    status = params.get("status")
    if status is not None and status not in RUN_STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(RUN_STATUSES)}", {"field": "status"})
    limit = query_int(request, "limit", 20, 1, MAX_LIMIT)
    with services(request).db.connection() as conn:
        require_pipeline(conn, request.path_params["pipeline_id"])
        rows = run_store.list_runs(
            conn, request.path_params["pipeline_id"], limit=limit, status=status
        )
    return JSONResponse([serialize.run(r) for r in rows])


def _require_run(svc: Services, pipeline_id: str, run_id: str) -> dict[str, Any]:
    with svc.db.connection() as conn:
        require_pipeline(conn, pipeline_id)
        row = run_store.get_run(conn, run_id)
    if row is None or row["pipeline_id"] != pipeline_id:
        raise ApiError(404, f"run {run_id!r} of pipeline {pipeline_id!r} not found")
    return row


def get_run(request: Request) -> JSONResponse:
    svc = services(request)
    row = _require_run(svc, request.path_params["pipeline_id"], request.path_params["run_id"])
    return JSONResponse(serialize.run(row))


def cancel_run(request: Request) -> JSONResponse:
    svc = services(request)
    pipeline_id, run_id = request.path_params["pipeline_id"], request.path_params["run_id"]
    row = _require_run(svc, pipeline_id, run_id)
    if row["status"] in TERMINAL_STATUSES:
        raise ApiError(409, f"run {run_id} already ended ({row['status']})")
    terminated, message = svc.dagster.terminate(run_id)
    if not terminated:
        raise ApiError(409, f"Dagster could not cancel run {run_id}: {message}")
    with svc.db.connection() as conn:
        run_store.mark_ended_abnormally(conn, run_id, pipeline_id, "cancelled", None)
        row = run_store.get_run(conn, run_id) or row
    return JSONResponse(serialize.run(row))


async def backfill(request: Request) -> JSONResponse:
    pipeline_id = request.path_params["pipeline_id"]
    partitioned = (await model_body(request, BackfillRequest)).partitioned
    svc = services(request)

    def launch() -> Launch:
        with svc.db.connection() as conn:
            config = pipeline_config(require_pipeline(conn, pipeline_id))
            if partitioned and (refusal := slice_refusal(config)) is not None:
                raise ApiError(409, f"pipeline {pipeline_id} has no slices to backfill: {refusal}")
            return launch_backfill(
                conn,
                svc.dagster,
                pipeline_id,
                list(target_key(config).path),
                partitioned=partitioned,
            )

    launched = await run_in_threadpool(launch)
    how = (
        f"a backfill of every partition of {slices_job_name(pipeline_id)}"
        if partitioned
        else "a Dagster asset backfill"
    )
    return serialize.answer(
        Backfill,
        {
            "message": f"full reload of {pipeline_id} launched as {how}",
            "pipelineId": pipeline_id,
            "backfillId": launched.id,
            "status": "requested",
            **launched.note("backfill"),
        },
        status_code=202,
    )
