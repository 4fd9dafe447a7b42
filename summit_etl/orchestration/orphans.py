"""Runs a stopped service left behind: failed at the next start, so that nothing waits on them.

With the DefaultRunLauncher every run worker descends from the service's code servers, and
stopping the service ends them: systemd kills what is left of the unit (KillMode=mixed),
Ctrl-C reaches the whole process group. Dagster cannot check a local worker's health, so a
run that was in flight when the service or its database went away (a failover) stays
STARTED for ever, and the pipeline's CDC sensor waits on it. At start-up none of them is
still running: they are marked failed (or canceled), which the run-status sensors record.
(Only a bare `kill` of `serve` by hand leaves workers behind; they fail on their own.)
One service per Dagster storage is assumed, as the systemd unit runs it.
"""

from __future__ import annotations

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.launcher import DefaultRunLauncher

IN_FLIGHT = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
MESSAGE = "the service stopped while this run was in flight (restart or database failover)"


def end_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Mark the in-flight runs of a previous service ended; returns their ids. Only for the
    local launcher: Kubernetes or Docker run workers outlive the service and are watched by
    Dagster's run monitoring instead."""
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return []
    ended = []
    for record in instance.get_run_records(RunsFilter(statuses=IN_FLIGHT)):
        run = record.dagster_run
        if run.status == DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message=MESSAGE)
        else:
            instance.report_run_failed(run, message=MESSAGE)
        ended.append(run.run_id)
    return ended
