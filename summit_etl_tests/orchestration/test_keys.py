"""The run filter that the CDC busy check and the queue share: every unfinished run of a
pipeline, whichever job runs it."""

from __future__ import annotations

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from summit_etl.orchestration.keys import (
    PIPELINE_TAG,
    SLICE_TAG,
    in_flight_runs,
    job_name,
    slices_job_name,
    tagged_pipeline,
)


def test_in_flight_runs_include_backfill_runs_of_the_asset_job() -> None:
    runs = {
        "backfill": DagsterRun(job_name="__ASSET_JOB", run_id="backfill", status=DagsterRunStatus.NOT_STARTED,
                               tags={PIPELINE_TAG: "users-sync", "dagster/backfill": "abc"}),
        "own": DagsterRun(job_name=job_name("users-sync"), run_id="own", status=DagsterRunStatus.STARTED,
                          tags={PIPELINE_TAG: "users-sync"}),
        "stopping": DagsterRun(job_name=job_name("users-sync"), run_id="stopping",
                               status=DagsterRunStatus.CANCELING, tags={PIPELINE_TAG: "users-sync"}),
        "done": DagsterRun(job_name=job_name("users-sync"), run_id="done", status=DagsterRunStatus.SUCCESS,
                           tags={PIPELINE_TAG: "users-sync"}),
        "other": DagsterRun(job_name="__ASSET_JOB", run_id="other", status=DagsterRunStatus.STARTED,
                            tags={PIPELINE_TAG: "orders", "dagster/backfill": "def"}),
    }
    with DagsterInstance.ephemeral() as instance:
        for run in runs.values():
            instance.add_run(run)
        found = {run.run_id for run in instance.get_runs(in_flight_runs("users-sync"))}
    assert found == {"backfill", "own", "stopping"}


def test_a_run_names_its_pipeline_by_the_pipeline_or_the_slice_tag() -> None:
    assert tagged_pipeline({PIPELINE_TAG: "users-sync"}) == "users-sync"
    assert tagged_pipeline({SLICE_TAG: "users-sync", "dagster/partition": "1-of-4"}) == "users-sync"
    assert tagged_pipeline({"dagster/backfill": "abc"}) is None
    # Slices have a job of their own, whose name no pipeline's own job can take.
    assert slices_job_name("x") != job_name("x_slices")
    assert slices_job_name("x").startswith("slices_of_")
