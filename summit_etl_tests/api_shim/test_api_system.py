"""`/health`, `/metrics`, `/openapi.json`, the request log, and refusing unsafe binds."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from summit_etl_tests.api_shim.conftest import Stack, free_port


def test_health_checks_database_dagster_and_daemon(api: httpx.Client) -> None:
    body = api.get("/health").json()
    assert body["status"] == "healthy" and body["service"] == "etl-service"
    assert {k: v["status"] for k, v in body["dependencies"].items()} == {
        "database": "up", "dagster": "up", "daemon": "up",
    }


def test_health_is_503_naming_the_database_when_it_is_down(stack: Stack) -> None:
    with stack.api(DATABASE_URL="postgresql://postgres@127.0.0.1:1/summit") as url:
        response = httpx.get(f"{url}/health", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["dependencies"]["database"]["status"] == "down"
    assert body["error"] == "dependency down: database"


def test_health_is_503_naming_dagster_when_it_is_down(stack: Stack) -> None:
    with stack.api(DAGSTER_GRAPHQL_URL=f"http://127.0.0.1:{free_port()}/graphql") as url:
        body = httpx.get(f"{url}/health", timeout=30).json()
    assert body["dependencies"]["dagster"]["status"] == "down"
    assert "dagster" in body["error"]


def test_metrics_as_json_and_prometheus(api: httpx.Client) -> None:
    api.post("/pipelines/users-sync/execute?wait=true")
    # /metrics answers from the API's snapshot, refreshed every second.
    deadline = time.monotonic() + 10
    while (values := api.get("/metrics").json())["successfulRuns"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert values["totalPipelines"] >= 4 and values["enabledPipelines"] >= 4
    assert values["activeCDCEngines"] == 0
    assert values["successfulRuns"] >= 1 and values["totalRecordsProcessed"] >= 200
    assert set(values) >= {"totalRuns", "failedRuns", "runningRuns", "averageQualityScore", "maxCdcLagSeconds", "timestamp"}
    text = api.get("/metrics", headers={"Accept": "text/plain"})
    assert text.headers["content-type"].startswith("text/plain")
    assert f"summit_runs_successful {float(values['successfulRuns'])}" in text.text
    openmetrics = api.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_openapi_describes_every_route(api: httpx.Client) -> None:
    from api_shim.app import ROUTES

    document = api.get("/openapi.json").json()
    for route in ROUTES:
        if route.path == "/openapi.json":
            continue
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in document["paths"][route.path], (method, route.path)
    assert "PipelineConfig" in document["components"]["schemas"]


def test_every_request_is_logged_as_a_json_line_without_secrets(api: httpx.Client, stack: Stack) -> None:
    def logged() -> list[dict]:
        lines = [json.loads(line) for line in stack.log_file.read_text().splitlines()]
        return [line for line in lines if line.get("message") == "request" and line.get("path") == "/pipelines/users-sync/runs"]

    # Other tests on this service hit the same path (some with a wrong token): only a line written
    # after this request is this request's.
    before = len(logged())
    response = api.get("/pipelines/users-sync/runs", params={"limit": 1}, headers={"Authorization": "Bearer hunter2"})
    assert response.status_code == 200
    deadline = time.monotonic() + 10  # the line is written once the response has gone out
    while len(requests := logged()) == before:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert requests[before]["method"] == "GET" and requests[before]["status"] == 200
    assert requests[before]["pipelineId"] == "users-sync" and requests[before]["durationMs"] >= 0
    assert "hunter2" not in stack.log_file.read_text()


def test_oversized_bodies_are_refused(api: httpx.Client) -> None:
    response = api.post("/pipelines", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_refuses_a_public_host_without_tokens(stack: Stack) -> None:
    env = {**stack.env, "ETL_SERVICE_HOST": "0.0.0.0", "ETL_SERVICE_PORT": str(free_port())}  # noqa: S104
    done = subprocess.run([sys.executable, "-m", "api_shim"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "refusing to listen on 0.0.0.0 without authentication" in done.stderr
