"""stop-all / resume-all, surviving a restart of the API in between (runbook "Database Failover")."""

from __future__ import annotations

import httpx

from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.support import run_sql


def schedule_statuses(stack: Stack) -> dict[str, str]:
    query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name scheduleState { status } } } } } }"
    nodes = httpx.post(stack.graphql_url, json={"query": query}).json()["data"]["repositoriesOrError"]["nodes"]
    return {s["name"]: s["scheduleState"]["status"] for n in nodes for s in n["schedules"]}


def test_stop_all_then_resume_all_from_a_restarted_api(stack: Stack) -> None:
    assert schedule_statuses(stack)["pipeline_users_sync_schedule"] == "RUNNING"
    with stack.api() as first:
        stopped = httpx.post(f"{first}/admin/stop-all", timeout=60).json()
    assert "pipeline_users_sync_schedule" in stopped["stopped"]["schedules"]
    assert schedule_statuses(stack)["pipeline_users_sync_schedule"] == "STOPPED"
    assert run_sql(stack.summit_url, "SELECT count(*) FROM etl_admin_stops WHERE resumed_at IS NULL AND kind = 'schedule'")[0][0] >= 1
    with stack.api() as second:  # a new process: what was stopped is read back from the database
        resumed = httpx.post(f"{second}/admin/resume-all", timeout=60).json()
        assert "pipeline_users_sync_schedule" in resumed["resumed"]["schedules"]
        assert schedule_statuses(stack)["pipeline_users_sync_schedule"] == "RUNNING"
        again = httpx.post(f"{second}/admin/resume-all", timeout=60).json()
    assert again["resumed"]["schedules"] == []  # only what stop-all stopped, once
