"""The runbook's curl commands, verbatim, against the live service (with jq).

Only the port changes (the test service listens on a free port, not 4020) and the
placeholders `{pipeline-id}` / `{run-id}` are filled in; each command is checked to
stand in the runbook exactly as run here.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.support import RUNBOOK

START = "curl -X POST http://localhost:4020/pipelines/{pipeline-id}/execute"
MONITOR = """curl -s http://localhost:4020/pipelines/{pipeline-id}/runs | jq ".[0]\""""
IDENTIFY = "curl http://localhost:4020/pipelines/{pipeline-id}/runs | jq '.[0]'"
ERRORS = "curl http://localhost:4020/pipelines/{pipeline-id}/runs/{run-id} | jq '.errors[]'"
LOGS = """tail -100 logs/etl-service.log | jq 'select(.pipelineId == "{pipeline-id}")'"""
STOP_ALL = "curl -X POST http://localhost:4020/admin/stop-all"
HEALTH = "curl http://localhost:4020/health"
RESUME_ALL = "curl -X POST http://localhost:4020/admin/resume-all"
HEALTH_JQ = "curl http://localhost:4020/health | jq"
METRICS_JQ = "curl http://localhost:4020/metrics | jq"
START_CDC = "curl -X POST http://localhost:4020/pipelines/{pipeline-id}/cdc/start"
STOP_CDC = "curl -X POST http://localhost:4020/pipelines/{pipeline-id}/cdc/stop"
ACTIVE_CDC = "curl http://localhost:4020/metrics | jq '.activeCDCEngines'"
RUN_METRICS = "curl http://localhost:4020/pipelines/{pipeline-id}/runs/{run-id} | jq '.metrics'"


def test_the_commands_are_the_runbooks() -> None:
    text = RUNBOOK.read_text()
    for command in (START, IDENTIFY, ERRORS, LOGS, STOP_ALL, HEALTH, RESUME_ALL, HEALTH_JQ,
                    METRICS_JQ, RUN_METRICS, START_CDC, STOP_CDC, ACTIVE_CDC):
        assert command in text, command
    assert f"watch -n 30 '{MONITOR}'" in text


def shell(stack: Stack, command: str, pipeline_id: str, run_id: str = "") -> str:
    filled = (
        command.replace("localhost:4020", stack.api_url.removeprefix("http://").replace("127.0.0.1", "localhost"))
        .replace("{pipeline-id}", pipeline_id)
        .replace("{run-id}", run_id)
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", filled], cwd=stack.log_file.parent.parent,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, f"{filled}\n{done.stderr}"
    return done.stdout


def jq_values(output: str) -> list[dict]:
    decoder, values, position = json.JSONDecoder(), [], 0
    output = output.strip()
    while position < len(output):
        value, end = decoder.raw_decode(output, position)
        values.append(value)
        position = end
        while position < len(output) and output[position].isspace():
            position += 1
    return values


@pytest.mark.parametrize("pipeline_id", ["broken-load"])
def test_start_a_pipeline_and_pipeline_failure_steps(stack: Stack, pipeline_id: str) -> None:
    launched = json.loads(shell(stack, START, pipeline_id))
    assert launched["status"] == "pending"
    deadline = time.monotonic() + 120
    while (latest := jq_values(shell(stack, MONITOR, pipeline_id))[0])["status"] in ("pending", "running"):
        assert time.monotonic() < deadline
        time.sleep(1)
    assert latest["id"] == launched["id"]

    failed = jq_values(shell(stack, IDENTIFY, pipeline_id))[0]
    assert failed["status"] == "failed"
    errors = jq_values(shell(stack, ERRORS, pipeline_id, failed["id"]))
    assert errors[0]["stage"] == "loading" and "character varying(3)" in errors[0]["message"]
    logged = jq_values(shell(stack, LOGS, pipeline_id))
    assert any(entry.get("runId") == failed["id"] and entry["message"] == "run failed" for entry in logged)


def test_database_failover_steps_1_4_5(stack: Stack) -> None:
    stopped = json.loads(shell(stack, STOP_ALL, "-"))
    assert "pipeline_users_sync_schedule" in stopped["stopped"]["schedules"]
    assert json.loads(shell(stack, HEALTH, "-"))["status"] == "healthy"
    resumed = json.loads(shell(stack, RESUME_ALL, "-"))
    assert set(resumed["resumed"]["schedules"]) == set(stopped["stopped"]["schedules"])


def test_morning_checklist_and_slow_pipeline_investigation(stack: Stack) -> None:
    assert json.loads(shell(stack, HEALTH_JQ, "-"))["status"] == "healthy"
    run = json.loads(shell(stack, START, "users-sync"))
    deadline = time.monotonic() + 120
    while jq_values(shell(stack, MONITOR, "users-sync"))[0]["status"] in ("pending", "running"):
        assert time.monotonic() < deadline
        time.sleep(1)
    # /metrics answers from the API's snapshot, refreshed every second.
    while (metrics := json.loads(shell(stack, METRICS_JQ, "-")))["successfulRuns"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert metrics["totalPipelines"] >= 4
    stages = json.loads(shell(stack, RUN_METRICS, "users-sync", run["id"]))
    assert {"extractionDurationMs", "transformationDurationMs", "loadingDurationMs"} <= set(stages)


def test_enable_cdc_and_the_lag_alert_restart(stack: Stack) -> None:
    def active(expected: int) -> int:
        deadline = time.monotonic() + 5  # /metrics answers from a snapshot refreshed every second
        value = int(shell(stack, ACTIVE_CDC, "-"))
        while value != expected and time.monotonic() < deadline:
            time.sleep(0.5)
            value = int(shell(stack, ACTIVE_CDC, "-"))
        return value

    started = json.loads(shell(stack, START_CDC, "users-cdc"))
    assert started["status"] == "running"
    assert active(1) == 1
    assert json.loads(shell(stack, STOP_CDC, "users-cdc"))["status"] == "stopped"
    assert active(0) == 0
