"""Read routes answer from the summit database and the API's background snapshot, never from
Dagster on the request path (issue 12 goal 6); the snapshot's refresh closes runs Dagster
ended without their record."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from api_shim.app import TABLE
from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.api_shim.test_api_runs import wait_for
from summit_etl_tests.support import run_sql

# Far below the API's Dagster timeouts (2 s for health checks, 10 s otherwise): a route that
# asked the unanswering Dagster below could not answer within it.
WITHIN_SECONDS = 1.0


@contextmanager
def unanswering_dagster() -> Iterator[str]:
    """A GraphQL URL whose server accepts connections and never answers: a call to it hangs
    until the caller's timeout, where a refused connection would fail fast."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/graphql"


def _seed(stack: Stack) -> str:
    """A failed run without recorded errors (an answer once completed from Dagster's events
    on every read), its quality report and an open alert."""
    run_id = f"reads-{uuid.uuid4().hex[:8]}"
    run_sql(stack.summit_url, "INSERT INTO pipeline_runs (id, pipeline_id, status, trigger, errors) VALUES (%s, 'users-sync', 'failed', 'manual', '[]')", (run_id,))
    run_sql(stack.summit_url, "INSERT INTO data_quality_reports (pipeline_run_id, pipeline_id, overall_score, dimensions) VALUES (%s, 'users-sync', 88.5, '{\"validity\": 77}')", (run_id,))
    run_sql(stack.summit_url, "INSERT INTO etl_alerts (rule, severity, pipeline_id, dedup_key, message) VALUES ('failure_rate', 'warning', 'users-sync', %s, %s)", (run_id, f"seeded for {run_id}"))
    return run_id


@pytest.fixture
def seeded(stack: Stack) -> Iterator[str]:
    run_id = _seed(stack)
    yield run_id
    # Other tests count users-sync's failed runs and open alerts.
    for table, column in (("pipeline_runs", "id"), ("data_quality_reports", "pipeline_run_id"), ("etl_alerts", "dedup_key")):
        run_sql(stack.summit_url, f"DELETE FROM {table} WHERE {column} = %s", (run_id,))


def test_every_read_route_answers_while_dagster_hangs(stack: Stack, seeded: str) -> None:
    run_id = seeded
    expected = {
        "/health": 503,
        "/metrics": 200,
        "/openapi.json": 200,
        "/pipelines": 200,
        "/pipelines/{pipeline_id}": 200,
        "/pipelines/{pipeline_id}/runs": 200,
        "/pipelines/{pipeline_id}/runs/{run_id}": 200,
        "/quality/reports/latest": 200,
        "/quality/reports/{run_id}": 200,
        "/alerts": 200,
    }
    # Every GET route of the API is here: a new one must show it answers without Dagster.
    assert set(expected) == {path for path, operations in TABLE.paths.items() if "GET" in operations}
    requests = {
        "/health": "/health",
        "/metrics": "/metrics",
        "/openapi.json": "/openapi.json",
        "/pipelines": "/pipelines",
        "/pipelines/{pipeline_id}": "/pipelines/users-sync",
        "/pipelines/{pipeline_id}/runs": "/pipelines/users-sync/runs?status=failed&limit=1000",
        "/pipelines/{pipeline_id}/runs/{run_id}": f"/pipelines/users-sync/runs/{run_id}",
        "/quality/reports/latest": "/quality/reports/latest?pipelineId=users-sync",
        "/quality/reports/{run_id}": f"/quality/reports/{run_id}",
        # Open or resolved: the service's alert rules may resolve the seeded one meanwhile.
        "/alerts": "/alerts?severity=warning&limit=1000",
    }
    with unanswering_dagster() as dagster_url, stack.api(DAGSTER_GRAPHQL_URL=dagster_url) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        # A fresh API process waits (bounded) for its first reading: Dagster's 2 s timeout.
        started = time.perf_counter()
        assert client.get("/health").status_code == 503
        assert time.perf_counter() - started < 10
        answers = {}
        for route, path in requests.items():
            started = time.perf_counter()
            response = client.get(path)
            took = time.perf_counter() - started
            assert response.status_code == expected[route], (path, response.text)
            assert took < WITHIN_SECONDS, (path, took)
            answers[route] = response.json()

    health = answers["/health"]
    assert health["status"] == "unhealthy" and health["dependencies"]["database"]["status"] == "up"
    assert health["dependencies"]["dagster"]["status"] == "down" and "dagster" in health["error"]
    metrics = answers["/metrics"]
    assert metrics["activeCDCEngines"] is None  # unknown while Dagster does not answer
    assert metrics["totalPipelines"] >= len(["users-sync", "slow-sync", "broken-load", "users-quality", "users-cdc"])
    assert metrics["failedRuns"] >= 1 and set(metrics["openAlerts"]) == {"critical", "warning", "info"}
    assert "/pipelines/{pipeline_id}/runs" in answers["/openapi.json"]["paths"]
    assert {"users-sync", "slow-sync", "broken-load", "users-quality", "users-cdc"} <= {p["id"] for p in answers["/pipelines"]}
    assert answers["/pipelines/{pipeline_id}"]["id"] == "users-sync"
    assert run_id in [r["id"] for r in answers["/pipelines/{pipeline_id}/runs"]]
    run = answers["/pipelines/{pipeline_id}/runs/{run_id}"]
    assert run["id"] == run_id and run["status"] == "failed" and run["errors"] == []
    assert answers["/quality/reports/latest"]["pipelineRunId"] == run_id
    assert answers["/quality/reports/{run_id}"]["dimensions"] == {"validity": 77}
    assert f"seeded for {run_id}" in [a["message"] for a in answers["/alerts"]]


def test_a_run_dagster_failed_without_its_record_is_closed_by_the_api(api: httpx.Client, stack: Stack) -> None:
    run = api.post("/pipelines/broken-load/execute?wait=true").json()
    assert run["status"] == "failed"
    # As if the worker had died before recording the end. The API's refresh or the daemon's
    # failure sensor (whichever comes first) closes the record, and both say the same.
    run_sql(stack.summit_url, "UPDATE pipeline_runs SET status = 'running', end_time = NULL, errors = '[]' WHERE id = %s", (run["id"],))

    def closed() -> bool:
        return bool(api.get(f"/pipelines/broken-load/runs/{run['id']}").json()["status"] == "failed")

    wait_for(closed, 15, 0.2)
    (error,) = api.get(f"/pipelines/broken-load/runs/{run['id']}").json()["errors"]
    assert error["details"]["source"] == "dagster" and error["stage"] == "loading"
    assert "value too long for type character varying(3)" in error["message"]
