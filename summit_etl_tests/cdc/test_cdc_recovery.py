"""Exactly once through crashes and outages: a run that dies at any point between the
target write and the watermark is replayed without losing or duplicating a change; a
source that is down fails the tick (watermark untouched) and the next tick carries on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from dagster import DagsterInstance

import summit_etl.cdc.apply
import summit_etl.cdc.sources
import summit_etl.store.cdc_watermarks
from summit_etl.cdc.target import committed_offset
from summit_etl_tests.cdc.cdc_support import (
    CAPTURES_DELETES,
    STRATEGIES,
    Harness,
    LogicalCluster,
    change_log,
    create_source,
    insert,
    raw_pipeline,
    source_rows,
    target_rows,
)
from summit_etl_tests.support import run_sql


class Crash(RuntimeError):
    pass


def crash(*_: object, **__: object) -> None:
    raise Crash("killed here")


# Where the run dies: inside the target transaction before its offset is written (it
# rolls back), after the target commit before the source is told (captured rows not
# pruned, slot not advanced), and after that before etl_cdc_watermarks is written.
CRASH_POINTS = {
    "before_offset": (summit_etl.cdc.apply, "write_offset"),
    "before_confirm": None,
    "before_watermark": (summit_etl.store.cdc_watermarks, "record"),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_run_killed_between_target_write_and_watermark_is_replayed_once(
    strategy: str,
    point: str,
    cdc_source: str,
    target_url: str,
    summit_url: str,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = cdc_source
    create_source(source, rows=3)
    cdc = Harness(raw_pipeline(strategy, source, target_url), summit_url, instance)
    assert all(r.success for r in cdc.cycle())
    watermark = cdc.watermark()

    run_sql(source, "UPDATE public.users SET email = 'changed@x.org' WHERE id = 1")
    run_sql(source, "DELETE FROM public.users WHERE id = 2")
    insert(source, 4, 250)  # three batches of 100
    with monkeypatch.context() as patch:
        target = CRASH_POINTS[point]
        if target is None:
            for kind in ("_Polled", "_Captured"):
                patch.setattr(getattr(summit_etl.cdc.sources, kind), "confirm", crash)
        else:
            patch.setattr(*target, crash)
        failed = cdc.cycle()
    assert len(failed) == 1 and not failed[0].success
    status, errors = run_sql(summit_url, "SELECT status, errors FROM pipeline_runs WHERE id = %s", (failed[0].run_id,))[0]
    assert status == "failed" and "killed here" in errors[0]["message"]
    assert cdc.watermark() == watermark  # the mirror never moved

    # The next ticks launch what is left (a window that did not move gets a new run key,
    # since Dagster runs a key once) until the probe finds nothing more.
    retried = [run for _ in range(3) for run in cdc.cycle()]
    assert all(run.success for run in retried)
    failed_key = failed[0].dagster_run.tags["dagster/run_key"]
    assert failed_key not in [run.dagster_run.tags["dagster/run_key"] for run in retried]
    assert cdc.watermark()[0] == committed_offset(cdc.config, summit_url).value
    expected = source_rows(source)
    if strategy not in CAPTURES_DELETES:
        expected = sorted([*expected, *[r for r in target_rows(target_url) if r[0] == 2]])
    assert target_rows(target_url) == expected
    log = change_log(target_url)
    assert max(Counter(row[4] for row in log).values()) == 1
    changes = 3 + 1 + 247 + (1 if strategy in CAPTURES_DELETES else 0)
    assert len(log) == changes
    assert Counter(op for op, *_ in log)["UPDATE"] == 1
    assert not cdc.tick().run_requests


def test_source_down_fails_the_tick_and_the_next_one_catches_up(
    logical_cluster: LogicalCluster,
    logical_database: Callable[[], str],
    target_url: str,
    summit_url: str,
    instance: DagsterInstance,
) -> None:
    source = logical_database()
    create_source(source, rows=3)
    cdc = Harness(raw_pipeline("log_based", source, target_url), summit_url, instance)
    assert all(r.success for r in cdc.cycle())
    insert(source, 4, 10)
    watermark, cursor = cdc.watermark(), cdc.cursor
    logical_cluster.stop()
    try:
        with pytest.raises(Exception, match="CDC probe of public.users for users-cdc failed"):
            cdc.tick()
        assert cdc.watermark() == watermark and cdc.cursor == cursor
        run = cdc.run()  # a run launched anyway fails in extraction and moves nothing
        assert not run.success
        errors = run_sql(summit_url, "SELECT errors FROM pipeline_runs WHERE id = %s", (run.run_id,))[0][0]
        assert errors[0]["stage"] == "extraction"
        assert cdc.watermark() == watermark
    finally:
        logical_cluster.start()
    runs = cdc.cycle()
    assert len(runs) == 1 and runs[0].success
    assert target_rows(target_url) == source_rows(source)


def test_enabled_false_pauses_the_sensor(
    make_database: Callable[[str], str], target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    source = make_database("src")
    create_source(source, rows=3)
    cdc = Harness(raw_pipeline("trigger", source, target_url), summit_url, instance)
    # The runbook's "Pause a Pipeline", verbatim.
    run_sql(summit_url, "UPDATE pipelines\nSET enabled = false\nWHERE pipeline_id = 'users-cdc';")
    paused = cdc.tick()
    assert not paused.run_requests and "users-cdc is paused" in (paused.skip_message or "")
    # Paused means not even probed: nothing was installed on the source.
    assert run_sql(source, "SELECT to_regclass('public.users_changes')") == [(None,)]
    run_sql(summit_url, "UPDATE pipelines\nSET enabled = true\nWHERE pipeline_id = 'users-cdc';")
    assert len(cdc.tick().run_requests) == 1


def test_log_based_needs_wal_level_logical(
    target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    # A source of our own without logical decoding, whatever the shared server runs with.
    with LogicalCluster.running(wal_level="replica") as cluster:
        source = cluster.admin_url
        assert run_sql(source, "SHOW wal_level") == [("replica",)]
        create_source(source)
        cdc = Harness(raw_pipeline("log_based", source, target_url), summit_url, instance)
        with pytest.raises(Exception, match="wal_level = logical"):
            cdc.tick()
