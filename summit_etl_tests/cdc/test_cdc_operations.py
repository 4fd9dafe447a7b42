"""What operators see and do: the runbook's CDC lag queries, and removing a pipeline's
capture from its source when the pipeline is deleted."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from dagster import DagsterInstance

from summit_etl.cdc.logical import slot_name
from summit_etl.cdc.sources import release_capture
from summit_etl.engine import RunRequest, StageFailure, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl_tests.cdc.cdc_support import Harness, create_source, raw_pipeline
from summit_etl_tests.support import RUNBOOK_PSQL, RUNBOOK_SQL_BLOCKS, run_sql

MORNING_CHECK = RUNBOOK_PSQL["cdc lag (morning checklist 5)"]
LAG_ALERT = RUNBOOK_SQL_BLOCKS["cdc lag alert"]


def test_runbook_lag_queries_show_the_pipeline_that_fell_behind(
    make_database: Callable[[str], str], target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    pipelines, sources = [], []
    for number, strategy in enumerate(("trigger", "timestamp")):
        sources.append(make_database("src"))
        create_source(sources[-1], rows=5)
        raw = raw_pipeline(strategy, sources[-1], target_url, pipeline_id=f"cdc-{number}",
                           loading={"targetTable": f"dw.users_{number}"})
        pipelines.append(Harness(raw, summit_url, instance))
    for cdc, source in zip(pipelines, sources, strict=True):
        assert all(r.success for r in cdc.cycle())  # the initial snapshot or read
        run_sql(source, "UPDATE public.users SET email = 'x' WHERE id IN (1, 2)")
        assert all(r.success for r in cdc.cycle())
        assert not cdc.tick().run_requests  # caught up: last_processed_time is the probe's

    assert run_sql(summit_url, MORNING_CHECK) == []
    run_sql(summit_url, "UPDATE etl_cdc_watermarks SET last_processed_time = now() - interval '2 hours' WHERE pipeline_id = 'cdc-1'")
    stale = run_sql(summit_url, MORNING_CHECK)
    assert [(table, lag > timedelta(hours=1)) for table, _, lag in stale] == [("public.users", True)]

    lags = run_sql(summit_url, LAG_ALERT)
    assert len(lags) == 2 and lags[0][1] > timedelta(hours=1) > lags[1][1]
    assert lags[1][2] == "2"  # the trigger pipeline applied up to capture position 2
    assert lags[0][2] is not None  # the newest updated_at the timestamp pipeline applied
    # A probe that finds nothing new says the target is caught up again.
    assert not pipelines[1].tick().run_requests
    assert run_sql(summit_url, MORNING_CHECK) == []


def test_deleting_a_pipeline_releases_its_trigger_and_slot(
    make_database: Callable[[str], str],
    logical_database: Callable[[], str],
    target_url: str,
    summit_url: str,
    instance: DagsterInstance,
) -> None:
    trigger_source, logical_source = make_database("src"), logical_database()
    for source in (trigger_source, logical_source):
        create_source(source, rows=2)
    by_trigger = raw_pipeline("trigger", trigger_source, target_url, pipeline_id="by-trigger",
                              loading={"targetTable": "dw.by_trigger"})
    by_log = raw_pipeline("log_based", logical_source, target_url, pipeline_id="by-log",
                          loading={"targetTable": "dw.by_log"})
    for raw in (by_trigger, by_log):
        assert all(r.success for r in Harness(raw, summit_url, instance).cycle())
    triggers = "SELECT count(*) FROM pg_trigger WHERE tgname = 'summit_cdc_users'"
    slot = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s"
    assert run_sql(trigger_source, triggers) == [(1,)]
    assert run_sql(logical_source, slot, (slot_name("by-log"),)) == [(1,)]

    assert release_capture(by_trigger) and release_capture(by_log)
    assert run_sql(trigger_source, triggers) == [(0,)]
    assert run_sql(logical_source, slot, (slot_name("by-log"),)) == [(0,)]
    assert run_sql(logical_source, "SELECT count(*) FROM pg_publication") == [(0,)]
    # Polling strategies install nothing; an unreachable source is logged, not raised.
    assert not release_capture(raw_pipeline("timestamp", trigger_source, target_url))
    gone = {**by_log, "source": {**by_log["source"], "url": "postgresql://postgres@127.0.0.1:1/x"}}
    assert not release_capture(gone)


def test_a_cdc_run_refuses_steps_it_would_otherwise_skip(
    make_database: Callable[[str], str], target_url: str, summit_url: str
) -> None:
    source = make_database("src")
    create_source(source, rows=1)
    raw = {**raw_pipeline("trigger", source, target_url),
           "transformation": {"transformations": [{"type": "filter", "expression": "id > 0"}]}}
    with pytest.raises(StageFailure, match="remove transformation steps") as failure:
        run_pipeline(parse_pipeline(raw, "test"), RunRequest("cdc-refused", trigger="cdc"), summit_url)
    assert failure.value.stage == "transformation"
    assert run_sql(summit_url, "SELECT status, errors -> 0 ->> 'stage' FROM pipeline_runs WHERE id = 'cdc-refused'") == [("failed", "transformation")]
    assert run_sql(source, "SELECT to_regclass('public.users_changes')") == [(None,)]
