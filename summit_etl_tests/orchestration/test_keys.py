"""The run filter that the CDC busy check and the queue share: every unfinished run of a
pipeline, whichever job runs it."""

from __future__ import annotations

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from summit_etl.orchestration.keys import PIPELINE_TAG, in_flight_runs, job_name


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
