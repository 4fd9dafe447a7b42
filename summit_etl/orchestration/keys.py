"""Names that Dagster and the API share: asset keys, job names, run tags."""

from __future__ import annotations

import re
from collections.abc import Mapping

from dagster import AssetKey, DagsterRunStatus, RunsFilter
from psycopg.conninfo import conninfo_to_dict

from summit_etl.claims import dagster_name
from summit_etl.config import PipelineConfig

CODE_LOCATION = "summit_etl"  # workspace.yaml's location_name
PIPELINE_TAG = "summit/pipeline_id"
TRIGGER_TAG = "summit/trigger"
FULL_RELOAD_TAG = "summit/full_reload"
BACKFILL_TAG = "dagster/backfill"
# On the runs of a pipeline's slices job instead of PIPELINE_TAG: dagster.yaml allows one
# run per PIPELINE_TAG value, and slices of one table are meant to load at the same time
# (the target's locks keep them apart from the pipeline's other runs, load/locks.py).
SLICE_TAG = "summit/slice_of"


# Unfinished runs: a run in any of these still holds (or waits for) its pipeline's target.
IN_FLIGHT_STATUSES = (
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
)


def job_name(pipeline_id: str) -> str:
    return "pipeline_" + dagster_name(pipeline_id)


def slices_job_name(pipeline_id: str) -> str:
    """The job of the pipeline's slices: a prefix of its own, as no pipeline's job name
    (`pipeline_<id>`) can take it."""
    return "slices_of_" + dagster_name(pipeline_id)


def tagged_pipeline(tags: Mapping[str, str]) -> str | None:
    """The pipeline a run's tags name: a run of its job or backfill, or one of its slices."""
    return tags.get(PIPELINE_TAG) or tags.get(SLICE_TAG)


def in_flight_runs(pipeline_id: str) -> RunsFilter:
    """The pipeline's unfinished runs, whichever job runs them: its own job, or the
    `__ASSET_JOB` of a backfill (both carry the pipeline tag)."""
    return RunsFilter(tags={PIPELINE_TAG: pipeline_id}, statuses=list(IN_FLIGHT_STATUSES))


def schedule_name(pipeline_id: str) -> str:
    return job_name(pipeline_id) + "_schedule"


def cdc_sensor_name(pipeline_id: str) -> str:
    return job_name(pipeline_id) + "_cdc"


def _database(url: str) -> str:
    try:
        return str(conninfo_to_dict(url).get("dbname") or "default")
    except Exception:  # an unparsable URL fails the run with its own message
        return "default"


def target_key(config: PipelineConfig) -> AssetKey:
    table = config.loading.target_name
    return AssetKey([table.schema or "public", table.name])


def source_key(config: PipelineConfig) -> AssetKey:
    database = re.sub(r"[^A-Za-z0-9_]", "_", _database(config.source.url))
    table = config.source.table_name
    if table is None:
        return AssetKey(["source", database, job_name(config.id) + "_query"])
    return AssetKey(["source", database, table.schema or "public", table.name])


def run_trigger(tags: dict[str, str]) -> str:
    """How a run was started, in the SPEC's words, from the tags Dagster put on it."""
    if BACKFILL_TAG in tags:
        return "backfill"
    if "dagster/schedule_name" in tags:
        return "schedule"
    if "dagster/sensor_name" in tags:
        return "cdc"
    return tags.get(TRIGGER_TAG, "manual")
