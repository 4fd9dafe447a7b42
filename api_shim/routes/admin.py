"""`/admin/stop-all` and `/admin/resume-all`: a whole-service pause that survives restarts.

stop-all stops every running schedule and CDC sensor, cancels backfills still launching
runs, cancels queued runs and terminates starting and running ones (backfill runs too),
and writes what it stopped to `etl_admin_stops`; resume-all starts exactly those
schedules and sensors again (runs are not relaunched: their pipelines' schedules or an
operator start them anew).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from api_shim.models import ResumeAll, StopAll
from api_shim.serialize import answer
from api_shim.services import services
from summit_etl.orchestration.keys import BACKFILL_TAG, tagged_pipeline
from summit_etl.store import admin as admin_store
from summit_etl.store import runs as run_store
from summit_etl.store.admin import Stopped

_ACTIVE_RUNS = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]  # CANCELING ones are stopping


def _is_cdc_sensor(name: str) -> bool:
    return name.endswith("_cdc")


def stop_all(request: Request) -> JSONResponse:
    svc = services(request)
    schedules, sensors = svc.dagster.instigators()
    running_schedules = [s for s in schedules if s.status == "RUNNING"]
    running_cdc = [s for s in sensors if s.status == "RUNNING" and _is_cdc_sensor(s.name)]
    svc.dagster.stop_instigators(running_schedules, running_cdc)
    stopped = [Stopped("schedule", schedule.name, None) for schedule in running_schedules]
    stopped += [Stopped("sensor", sensor.name, None) for sensor in running_cdc]
    # Backfills first, so that none launches another run while their runs are stopped.
    backfills = [b["id"] for b in svc.dagster.backfills("REQUESTED")]
    cancelled_backfills = [b for b in backfills if svc.dagster.cancel_backfill(b)[0]]
    for run in svc.dagster.runs(statuses=_ACTIVE_RUNS):
        tags = {t["key"]: t["value"] for t in run["tags"]}
        pipeline_id = tagged_pipeline(tags)
        if pipeline_id is None and BACKFILL_TAG not in tags:
            continue
        terminated, _ = svc.dagster.terminate(run["runId"])
        if not terminated:  # e.g. still starting: its worker cannot be asked yet
            terminated, _ = svc.dagster.terminate(run["runId"], force=True)
        if not terminated:
            continue
        stopped.append(Stopped("run", run["runId"], pipeline_id))
        if pipeline_id is not None:  # recorded at once, as a single cancel is
            with svc.db.connection() as conn:
                run_store.mark_ended_abnormally(conn, run["runId"], pipeline_id, "cancelled", None)
    with svc.db.connection() as conn:
        admin_store.record_stops(conn, stopped)
    return answer(
        StopAll,
        {
            "message": "stopped every schedule and CDC sensor and cancelled active runs",
            "stopped": {**_summary(stopped), "backfills": cancelled_backfills},
        },
    )


def resume_all(request: Request) -> JSONResponse:
    svc = services(request)
    with svc.db.connection() as conn:
        pending = admin_store.open_stops(conn)
    schedules, sensors = svc.dagster.instigators()
    existing = {("schedule", s.name): s for s in schedules} | {
        ("sensor", s.name): s for s in sensors
    }
    resumed = [item for item in pending if (item.kind, item.name) in existing]
    missing = [item.name for item in pending if (item.kind, item.name) not in existing]
    svc.dagster.start_instigators(
        [existing[("schedule", i.name)] for i in resumed if i.kind == "schedule"],
        [existing[("sensor", i.name)] for i in resumed if i.kind == "sensor"],
    )
    with svc.db.connection() as conn:
        admin_store.mark_resumed(conn, [*resumed, *(i for i in pending if i.name in missing)])
    return answer(
        ResumeAll,
        {
            "message": "started again what stop-all stopped",
            "resumed": _summary(resumed),
            "missing": missing,
        },
    )


def _summary(items: list[Stopped]) -> dict[str, list[str]]:
    return {
        "schedules": [i.name for i in items if i.kind == "schedule"],
        "sensors": [i.name for i in items if i.kind == "sensor"],
        "runs": [i.name for i in items if i.kind == "run"],
    }
