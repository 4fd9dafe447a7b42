"""Quality through the API: reports of real runs, the runbook's quality commands, replay."""

from __future__ import annotations

import json
import subprocess

import httpx

from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.support import RUNBOOK, run_sql

LATEST_ISSUES = "curl http://localhost:4020/quality/reports/latest | jq '.issues[]'"
REPORT = "curl http://localhost:4020/quality/reports/{run-id} | jq"
DIMENSIONS = "curl http://localhost:4020/quality/reports/{run-id} | jq '.dimensions'"
CRITICAL = """curl http://localhost:4020/quality/reports/{run-id} | jq '.issues[] | select(.severity == "critical")'"""


def shell(stack: Stack, command: str, run_id: str) -> str:
    filled = command.replace("localhost:4020", stack.api_url.removeprefix("http://")).replace("{run-id}", run_id)
    done = subprocess.run(["bash", "-o", "pipefail", "-c", filled], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{filled}\n{done.stderr}"
    return done.stdout


def test_quality_report_of_a_real_run_and_the_runbook_commands(api: httpx.Client, stack: Stack) -> None:
    text = RUNBOOK.read_text()
    assert all(c in text for c in (LATEST_ISSUES, REPORT, DIMENSIONS, CRITICAL))
    run = api.post("/pipelines/users-quality/execute?wait=true").json()
    assert run["status"] == "partial_success"
    assert (run["recordsExtracted"], run["recordsLoaded"], run["recordsQuarantined"]) == (200, 150, 50)
    assert run["qualityScore"] is not None

    report = json.loads(shell(stack, REPORT, run["id"]))
    assert report["pipelineRunId"] == run["id"] and report["overallScore"] == run["qualityScore"]
    dimensions = json.loads(shell(stack, DIMENSIONS, run["id"]))
    assert dimensions["completeness"] == 100.0 and dimensions["accuracy"] == 75.0
    critical = json.loads(shell(stack, CRITICAL, run["id"]))
    assert critical["ruleId"] == "low-ids" and critical["affectedRecords"] == 50
    latest = shell(stack, LATEST_ISSUES, run["id"])
    assert '"ruleId": "low-ids"' in latest

    assert run_sql(stack.summit_url, "SELECT count(*) FROM etl_quarantine WHERE run_id = %s", (run["id"],)) == [(50,)]
    replay = api.post(f"/pipelines/users-quality/runs/{run['id']}/quarantine/replay")
    assert replay.status_code == 200
    assert (replay.json()["replayed"], replay.json()["stillQuarantined"]) == (0, 50)  # the rule still holds them
    assert api.post(f"/pipelines/users-sync/runs/{run['id']}/quarantine/replay").status_code == 404
