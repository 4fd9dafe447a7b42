"""Runs a stopped service left in flight are ended at the next start; the rest stay as they are."""

from __future__ import annotations

from pathlib import Path

import yaml
from dagster import DagsterInstance, DagsterRunStatus, job, op

from summit_etl.orchestration.orphans import MESSAGE, end_orphaned_runs


@op
def step() -> None:
    pass


@job
def pipeline_job() -> None:
    step()


def _instance(home: Path, launcher: dict[str, str]) -> DagsterInstance:
    (home / "dagster.yaml").write_text(yaml.safe_dump({"run_launcher": launcher}))
    return DagsterInstance.from_config(str(home))


def test_in_flight_runs_are_ended_and_others_kept(tmp_path: Path) -> None:
    local = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
    with _instance(tmp_path, local) as instance:
        runs = {
            status: instance.create_run_for_job(pipeline_job, status=status).run_id
            for status in (
                DagsterRunStatus.STARTED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.CANCELING,
                DagsterRunStatus.NOT_STARTED,
                DagsterRunStatus.SUCCESS,
            )
        }
        ended = end_orphaned_runs(instance)

        assert sorted(ended) == sorted(
            runs[s]
            for s in (
                DagsterRunStatus.STARTED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.CANCELING,
            )
        )

        def status(of: DagsterRunStatus) -> DagsterRunStatus:
            run = instance.get_run_by_id(runs[of])
            assert run is not None
            return run.status

        assert status(DagsterRunStatus.STARTED) == DagsterRunStatus.FAILURE
        assert status(DagsterRunStatus.STARTING) == DagsterRunStatus.FAILURE
        assert status(DagsterRunStatus.CANCELING) == DagsterRunStatus.CANCELED
        # Not started yet is not in flight (the queue or the launcher picks it up); finished
        # runs stay as they ended.
        assert status(DagsterRunStatus.NOT_STARTED) == DagsterRunStatus.NOT_STARTED
        assert status(DagsterRunStatus.SUCCESS) == DagsterRunStatus.SUCCESS
        failure = instance.all_logs(runs[DagsterRunStatus.STARTED])[-1]
        assert failure.message == MESSAGE
        assert end_orphaned_runs(instance) == []


def test_remote_launchers_are_left_to_run_monitoring(tmp_path: Path) -> None:
    # A Docker run worker outlives the service that launched it: nothing is ended.
    docker = {"module": "dagster_docker", "class": "DockerRunLauncher"}
    with _instance(tmp_path, docker) as instance:
        run_id = instance.create_run_for_job(pipeline_job, status=DagsterRunStatus.STARTED).run_id
        assert end_orphaned_runs(instance) == []
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.STARTED
