"""Pipeline configurations → Dagster Definitions.

The registry has already refused pipelines that clash (ids, targets: summit_etl.claims),
so every pipeline here gets its own asset, job, schedule and sensor names.
"""

from __future__ import annotations

from dagster import (
    AssetChecksDefinition,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    Definitions,
    JobDefinition,
    define_asset_job,
    in_process_executor,
)

from summit_etl.alerts.settings import AlertSettings
from summit_etl.config import ExtractionStrategy
from summit_etl.config.slicing import slice_refusal
from summit_etl.orchestration.alerts_sensor import alerts_sensor
from summit_etl.orchestration.assets import pipeline_asset, source_spec
from summit_etl.orchestration.cdc_sensors import cdc_sensor
from summit_etl.orchestration.keys import PIPELINE_TAG, job_name, target_key
from summit_etl.orchestration.maintenance import maintenance_definitions
from summit_etl.orchestration.resources import SummitDatabase
from summit_etl.orchestration.schedules import pipeline_schedule
from summit_etl.orchestration.sensors import config_error_sensor, run_record_sensors
from summit_etl.orchestration.slices import slices_job
from summit_etl.orchestration.verify_check import verifiable, verify_check, verify_check_key
from summit_etl.registry import Registry


def build_definitions(registry: Registry, summit_url: str) -> Definitions:
    assets: list[AssetsDefinition] = []
    sources: dict[object, AssetSpec] = {}
    checks: list[AssetChecksDefinition] = []
    jobs, schedules, cdc_sensors = [], [], []
    slice_jobs: list[JobDefinition] = []
    for config in registry.pipelines.values():
        stored = config.id not in registry.from_files
        asset = pipeline_asset(config, stored=stored)
        assets.append(asset)
        spec = source_spec(config)
        sources.setdefault(spec.key, spec)
        selection: AssetSelection = AssetSelection.assets(target_key(config))
        if verifiable(config):
            checks.append(verify_check(config))
            # On demand only: a run loads, it does not also read both tables whole.
            selection -= AssetSelection.checks(verify_check_key(config))
        job = define_asset_job(
            job_name(config.id),
            selection=selection,
            tags={PIPELINE_TAG: config.id},
            description=f"Runs pipeline {config.id}: {config.name}",
        )
        jobs.append(job)
        if slice_refusal(config) is None:
            slice_jobs.append(slices_job(config))
        schedule = pipeline_schedule(config, job, summit_url)
        if schedule is not None:
            schedules.append(schedule)
        if config.extraction.strategy is ExtractionStrategy.cdc:
            cdc_sensors.append(cdc_sensor(config, job, summit_url, stored=stored))
    maintenance_jobs, maintenance_schedules = maintenance_definitions(registry.pipelines)
    return Definitions(
        assets=[*sources.values(), *assets],
        asset_checks=checks,
        jobs=[*jobs, *slice_jobs, *maintenance_jobs],
        schedules=[*schedules, *maintenance_schedules],
        sensors=[
            *run_record_sensors(summit_url),
            config_error_sensor(registry.errors),
            alerts_sensor(registry.pipelines, summit_url, AlertSettings.from_env()),
            *cdc_sensors,
        ],
        resources={"summit": SummitDatabase.for_url(summit_url)},
        # Every job is one step (the pipeline's asset): run it in the run worker's own
        # process instead of starting a second one for the step. Backfills' __ASSET_JOB too.
        executor=in_process_executor,
        metadata={"config_errors": [str(e) for e in registry.errors]},
    )
