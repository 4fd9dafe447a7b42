"""The QueuedRunCoordinator of the deployed instance, run by the real daemon: several
pipelines run in parallel, never more than `max_concurrent_runs` at once, and never two
runs of one pipeline together (tag_concurrency_limits on summit/pipeline_id)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import pytest
from dagster import RunsFilter
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from summit_etl_tests.deploy.conftest import MAX_CONCURRENT_RUNS, Service

TERMINAL = {"success", "partial_success", "failed", "cancelled"}


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.slow
def test_queue_runs_pipelines_in_parallel_within_the_limits(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # queue-a's second run is a full reload: a plain execute while one waits would be
    # answered with the waiting run (the bounded queue), not queued twice.
    launches = [("queue-a", {}), ("queue-a", {"fullReload": True}), ("queue-b", {}), ("queue-c", {})]
    # The service is shared: a run another test left in flight (the failover test's slow
    # load) would hold one of the two slots, and the queue could run these one at a time.
    with service.dagster(monkeypatch) as instance:
        in_flight = RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES))
        deadline = time.monotonic() + 120
        while instance.get_runs(in_flight) and time.monotonic() < deadline:
            time.sleep(1)
        assert not instance.get_runs(in_flight), "runs of other tests still hold the queue"
    with httpx.Client(base_url=service.api_url, timeout=60) as api:
        launched = []
        for pipeline_id, body in launches:
            answer = api.post(f"/pipelines/{pipeline_id}/execute", json=body)
            assert answer.status_code == 202, answer.text
            launched.append((pipeline_id, answer.json()["id"]))
        deadline = time.monotonic() + 120
        runs: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline and len(runs) < len(launched):
            for pipeline_id, run_id in launched:
                run = api.get(f"/pipelines/{pipeline_id}/runs/{run_id}").json()
                if run["status"] in TERMINAL:
                    runs[run_id] = run
            time.sleep(1)
    assert len(runs) == len(launched), "runs still queued or running after 120 s"
    assert {run["status"] for run in runs.values()} == {"success"}, runs
    # When Dagster started and ended each run (the run worker's whole life), the times the
    # coordinator governs.
    spans: dict[str, tuple[float, float]] = {}
    with service.dagster(monkeypatch) as instance:
        # The engine records success just before Dagster marks the run finished.
        deadline = time.monotonic() + 30
        while len(spans) < len(launched) and time.monotonic() < deadline:
            for _, run_id in launched:
                record = instance.get_run_record_by_id(run_id)
                if record and record.start_time and record.end_time:
                    spans[run_id] = (record.start_time, record.end_time)
            time.sleep(0.5)
    assert len(spans) == len(launched), "Dagster did not finish the runs"
    pipeline_of = dict((run_id, pipeline_id) for pipeline_id, run_id in launched)

    # One run per pipeline at a time: the two runs of queue-a follow each other.
    first, second = (run_id for pipeline_id, run_id in launched if pipeline_id == "queue-a")
    assert not _overlap(spans[first], spans[second])
    # Never more runs at once than the queue allows (checked at every run's start).
    for run_id, (started, _) in spans.items():
        running = [other for other, span in spans.items() if span[0] <= started < span[1]]
        assert len(running) <= MAX_CONCURRENT_RUNS, (run_id, running)
    # And the queue did run different pipelines side by side.
    assert any(
        _overlap(spans[a], spans[b])
        for a, b in itertools.combinations(spans, 2)
        if pipeline_of[a] != pipeline_of[b]
    )
