"""stop-all / resume-all, surviving a restart of the API in between (runbook "Database Failover")."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from dagster import DagsterInstance
from dagster._core.scheduler.instigation import InstigatorType

from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.support import run_sql


def schedule_statuses(stack: Stack) -> dict[str, str]:
    query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name scheduleState { status } } } } } }"
    nodes = httpx.post(stack.graphql_url, json={"query": query}).json()["data"]["repositoriesOrError"]["nodes"]
    return {s["name"]: s["scheduleState"]["status"] for n in nodes for s in n["schedules"]}


def stale_write_back(instance: DagsterInstance, stack: Stack, name: str, once: str) -> threading.Thread:
    """A daemon pass that read `name`'s state before it became `once` and writes that copy
    back right after (the sensor daemon's tick; the scheduler's checkpoint, which it writes
    for stopped schedules too)."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
    read_by_scheduler = next(s for s in states if s.instigator_name == name)

    def status() -> str | None:
        # Read where Dagster keeps it (a few ms, not a GraphQL round trip): the stale write
        # lands well inside the API's read-back, as a daemon's would, even on a busy machine.
        state = instance.get_instigator_state(
            read_by_scheduler.instigator_origin_id, read_by_scheduler.selector_id
        )
        return None if state is None else state.status.value

    def write_back() -> None:
        deadline = time.monotonic() + 60
        while status() != once and time.monotonic() < deadline:
            time.sleep(0.005)
        instance.update_instigator_state(read_by_scheduler)

    writer = threading.Thread(target=write_back, daemon=True)
    writer.start()
    return writer


def test_stop_all_then_resume_all_from_a_restarted_api(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "pipeline_users_sync_schedule"
    assert schedule_statuses(stack)[name] == "RUNNING"
    with stack.dagster(monkeypatch) as instance:
        undoing = stale_write_back(instance, stack, name, once="STOPPED")
        with stack.api() as first:
            stopped = httpx.post(f"{first}/admin/stop-all", timeout=60).json()
        undoing.join()
    assert name in stopped["stopped"]["schedules"]
    assert schedule_statuses(stack)[name] == "STOPPED"  # stopped again after the stale write
    assert "a Dagster daemon undid a stop" in stack.log_file.read_text()
    assert run_sql(stack.summit_url, "SELECT count(*) FROM etl_admin_stops WHERE resumed_at IS NULL AND kind = 'schedule'")[0][0] >= 1
    with stack.dagster(monkeypatch) as instance, stack.api() as second:
        # A new process: what was stopped is read back from the database. The scheduler's
        # checkpoint of the stopped schedule lands after the start: it is started again.
        undoing = stale_write_back(instance, stack, name, once="RUNNING")
        resumed = httpx.post(f"{second}/admin/resume-all", timeout=60).json()
        undoing.join()
        assert name in resumed["resumed"]["schedules"]
        assert schedule_statuses(stack)["pipeline_users_sync_schedule"] == "RUNNING"
        assert "a Dagster daemon undid a start" in stack.log_file.read_text()
        again = httpx.post(f"{second}/admin/resume-all", timeout=60).json()
    assert again["resumed"]["schedules"] == []  # only what stop-all stopped, once
