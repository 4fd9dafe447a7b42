"""`/pipelines/{id}/cdc/start|stop` and delete on a CDC pipeline, on the whole service:
capture installed before start answers, everything retired by a delete that waits for the
live run, slot retention in /metrics and /health, and `cdc.dropSlotOnStop`."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType
from psycopg import sql

from summit_etl.cdc.logical import slot_name
from summit_etl.orchestration.keys import PIPELINE_TAG, cdc_sensor_name
from summit_etl_tests.api_shim.conftest import Stack, wait_until
from summit_etl_tests.cdc.cdc_support import (
    LogicalCluster,
    create_source,
    insert,
    raw_pipeline,
    source_rows,
)
from summit_etl_tests.support import run_sql

TRIGGERS = "SELECT count(*) FROM pg_trigger WHERE tgname = 'summit_cdc_users'"
SLOTS = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s"


def _rows(url: str, table: str) -> list[tuple]:
    query = sql.SQL("SELECT id, email, score, doc FROM {} ORDER BY id").format(
        sql.Identifier("dw", table)
    )
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            return conn.execute(query).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


@contextmanager
def _pipeline(api: httpx.Client, body: dict[str, Any]) -> Iterator[str]:
    """An API pipeline, deleted (and so retired) when the test leaves, whatever happened."""
    created = api.post("/pipelines", json=body)
    assert created.status_code == 201, created.text
    try:
        yield body["id"]
    finally:
        api.delete(f"/pipelines/{body['id']}")


def _wait_for_successful_runs(api: httpx.Client, count: int) -> None:
    """Until `count` runs of lc-log succeeded and none is in flight."""

    def done() -> bool:
        statuses = [r["status"] for r in api.get("/pipelines/lc-log/runs").json()]
        return statuses.count("success") >= count and not {"pending", "running"} & set(statuses)

    wait_until(done, 90, f"{count} CDC run(s) of lc-log")


def _trigger_pipeline(source: str, target: str) -> dict[str, Any]:
    pipeline = raw_pipeline("trigger", source, target, pipeline_id="lc-trigger",
                            loading={"targetTable": "dw.lc_trigger"})
    pipeline["cdc"]["idleWindowSeconds"] = 120  # the live run outlasts the test's checks
    return pipeline


def _dagster_statuses(stack: Stack, pipeline_id: str) -> list[str]:
    """Dagster's own record of the pipeline's runs (the API forgets a deleted pipeline)."""
    query = """query Runs($filter: RunsFilter) { runsOrError(filter: $filter) {
        ... on Runs { results { status } } } }"""
    variables = {"filter": {"tags": [{"key": PIPELINE_TAG, "value": pipeline_id}]}}
    data = httpx.post(stack.graphql_url, json={"query": query, "variables": variables}).json()
    return [run["status"] for run in data["data"]["runsOrError"]["results"]]


def test_start_captures_before_it_answers_and_delete_retires_what_the_pipeline_owned(
    api: httpx.Client, stack: Stack, make_database: Callable[[str], str]
) -> None:
    source = make_database("src")
    create_source(source, rows=3)
    with _pipeline(api, _trigger_pipeline(source, stack.target_url)):
        assert api.post("/pipelines/lc-trigger/cdc/start").status_code == 200
        assert run_sql(source, TRIGGERS) == [(1,)]  # installed before the answer
        run_sql(source, "UPDATE public.users SET email = 'after-start' WHERE id = 1")
        wait_until(lambda: _rows(stack.target_url, "lc_trigger") == source_rows(source), 90, "the snapshot")
        # Until the captured update is released, it may still be applied a second time.
        pending = "SELECT count(*) FROM public.users_changes"
        wait_until(lambda: run_sql(source, pending) == [(0,)], 60, "the captured change")
        logged = run_sql(stack.target_url, "SELECT new_values ->> 'email' FROM dw.lc_trigger_changes")
        assert logged.count(("after-start",)) == 1  # in the snapshot or captured: once

        offsets = "SELECT count(*) FROM dw.summit_cdc_offsets WHERE pipeline_id = 'lc-trigger'"
        watermarks = "SELECT count(*) FROM etl_cdc_watermarks WHERE pipeline_id = 'lc-trigger'"
        assert run_sql(stack.target_url, offsets) == run_sql(stack.summit_url, watermarks) == [(1,)]
        # Deleted while its live run applies (it would idle two minutes): the delete waits
        # for that run to see its sensor stopped and end, then retires the capture under it.
        assert "STARTED" in _dagster_statuses(stack, "lc-trigger")
        assert api.delete("/pipelines/lc-trigger").status_code == 204
        assert set(_dagster_statuses(stack, "lc-trigger")) == {"SUCCESS"}  # ended, not killed
        assert run_sql(source, TRIGGERS) == [(0,)]
        assert run_sql(stack.target_url, offsets) == run_sql(stack.summit_url, watermarks) == [(0,)]
        run_sql(source, "UPDATE public.users SET email = 'after-delete' WHERE id = 2")
        assert run_sql(source, "SELECT count(*) FROM public.users_changes") == [(0,)]
    # A pipeline created again with this id starts fresh: see cdc/test_cdc_lifecycle.py.


def test_a_sensor_stop_that_the_daemon_undoes_mid_tick_is_stopped_again(
    api: httpx.Client, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster's sensor daemon writes a sensor's state back at the start of a tick from a
    copy read just before; a stop landing in between is undone. Here the daemon's stale
    write is made on purpose, the moment the stop lands: cdc/stop must still leave the
    sensor stopped."""
    body = raw_pipeline("timestamp", stack.source_url, stack.target_url, pipeline_id="stop-race",
                        loading={"targetTable": "dw.stop_race"})
    name = cdc_sensor_name("stop-race")
    undone = threading.Event()
    with _pipeline(api, body), stack.dagster(monkeypatch) as instance:
        assert api.post("/pipelines/stop-race/cdc/start").status_code == 200

        def state() -> InstigatorState:
            states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            return next(s for s in states if s.instigator_name == name)

        read_by_daemon = state()
        assert read_by_daemon.status == InstigatorStatus.RUNNING

        def status() -> InstigatorStatus | None:
            # One row where Dagster keeps it (a few ms): the stale write lands well inside
            # the API's 0.3 s read-back, as the daemon's would, even on a busy machine.
            found = instance.get_instigator_state(
                read_by_daemon.instigator_origin_id, read_by_daemon.selector_id
            )
            return None if found is None else found.status

        def write_back_when_stopped() -> None:
            deadline = time.monotonic() + 60
            while status() != InstigatorStatus.STOPPED and time.monotonic() < deadline:
                time.sleep(0.005)
            instance.update_instigator_state(read_by_daemon)  # as mark_sensor_state_for_tick
            undone.set()

        daemon = threading.Thread(target=write_back_when_stopped, daemon=True)
        daemon.start()
        stopped = api.post("/pipelines/stop-race/cdc/stop")
        daemon.join()
        assert stopped.status_code == 200, stopped.text
        assert undone.is_set()
        assert state().status == InstigatorStatus.STOPPED
        assert "a Dagster daemon undid a stop" in stack.log_file.read_text()


def test_a_cdc_sensor_ticks_at_its_poll_interval_not_at_dagsters_five_seconds(
    api: httpx.Client, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cdc.pollIntervalSeconds: 1` is honoured: Dagster's sensor daemon passes over its
    sensors every 5 s whatever their interval, so this sensor ticked every 5 s and the
    first change after an idle spell waited up to that long; the daemon `summit-etl serve`
    starts passes every second (orchestration/daemon.py)."""
    body = raw_pipeline("timestamp", stack.source_url, stack.target_url, pipeline_id="tick-pace",
                        loading={"targetTable": "dw.tick_pace"},
                        cdc_options={"pollIntervalSeconds": 1})
    name = cdc_sensor_name("tick-pace")
    with _pipeline(api, body), stack.dagster(monkeypatch) as instance:
        assert api.post("/pipelines/tick-pace/cdc/start").status_code == 200
        state = next(
            s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            if s.instigator_name == name
        )

        def tick_times() -> list[float]:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=20)
            return sorted(t.timestamp for t in ticks)

        wait_until(lambda: len(tick_times()) >= 8, 60, "eight ticks of the CDC sensor")
        times = tick_times()
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        # About a second each (a tick that launched a run takes longer); 5 s before.
        assert statistics.median(gaps) < 2.5, gaps


def test_slot_retention_is_in_metrics_and_health_and_stop_can_drop_the_slot(
    api: httpx.Client, stack: Stack
) -> None:
    with LogicalCluster.running() as cluster:
        source = cluster.admin_url
        create_source(source, rows=3)
        body = raw_pipeline("log_based", source, stack.target_url, pipeline_id="lc-log",
                            loading={"targetTable": "dw.lc_log"})
        with _pipeline(api, body):
            assert api.post("/pipelines/lc-log/cdc/start").status_code == 200
            assert run_sql(source, SLOTS, (slot_name("lc-log"),)) == [(1,)]  # before the answer
            _wait_for_successful_runs(api, 1)  # the snapshot
            assert api.post("/pipelines/lc-log/cdc/stop").status_code == 200
            assert run_sql(source, SLOTS, (slot_name("lc-log"),)) == [(1,)]  # kept by default
            insert(source, 4, 3000)  # WAL nobody reads while CDC is stopped

            def retained() -> Any:
                return api.get("/metrics").json()["cdcSlotRetainedBytes"].get("lc-log")

            wait_until(lambda: (retained() or 0) > 100_000, 30, "the slot's retention in /metrics")
            text = api.get("/metrics", headers={"Accept": "text/plain"}).text
            assert 'summit_cdc_slot_retained_bytes{pipeline="lc-log"}' in text
            assert api.get("/health").json()["status"] == "healthy"  # under the default 1 GiB
            with stack.api(ETL_CDC_SLOT_DEGRADED_BYTES="100000") as strict:
                health = httpx.get(f"{strict}/health", timeout=60)
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            assert any("lc-log" in w for w in health.json()["warnings"])

            # A live run reads the slot when CDC is stopped: stop waits for it to end.
            body["cdc"].update(dropSlotOnStop=True, idleWindowSeconds=120)
            assert api.put("/pipelines/lc-log", json=body).status_code == 200
            assert api.post("/pipelines/lc-log/cdc/start").status_code == 200
            wait_until(  # the rows written while it was stopped
                lambda: _rows(stack.target_url, "lc_log") == source_rows(source), 90, "catching up"
            )
            statuses = [r["status"] for r in api.get("/pipelines/lc-log/runs").json()]
            assert "running" in statuses  # live, and would idle for two minutes
            stopped = api.post("/pipelines/lc-log/cdc/stop")
            assert stopped.status_code == 200, stopped.text
            assert run_sql(source, SLOTS, (slot_name("lc-log"),)) == [(0,)]
            _wait_for_successful_runs(api, 2)  # the live run ended, after its batches
            wait_until(lambda: retained() == 0, 30, "the dropped slot in /metrics")
        wait_until(lambda: "lc-log" not in api.get("/metrics").json()["cdcSlotRetainedBytes"], 30, "delete")
        assert run_sql(source, "SELECT count(*) FROM pg_publication") == [(0,)]
