"""The source server, then the target server, stops in the middle of an incremental upsert
run and of a CDC (trigger) run: the run fails with its stage and the database's message,
the watermark stays where it was, and the next run (server back) loads exactly the source."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from summit_etl_tests.cdc.cdc_support import LogicalCluster
from summit_etl_tests.faults.fault_support import (
    CLEAN,
    MakeDatabase,
    change_source,
    create_source,
    pipeline,
    source_high_mark,
    tally,
    watermark,
)
from summit_etl_tests.faults.worker import run_in_worker, run_job
from summit_etl_tests.support import run_sql

# Sleeps per row while the database's `faults.delay` is set, so that a run is still
# reading (through the view) or writing (through the trigger) when the server stops.
SLOW = """
CREATE FUNCTION public.slowly() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(coalesce(nullif(current_setting('faults.delay', true), ''), '0')::float);
  RETURN true;
END $$;
"""
SLOW_SOURCE = "CREATE VIEW public.items_slow AS SELECT * FROM public.items WHERE public.slowly()"
SLOW_TARGET = """
CREATE FUNCTION public.slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM public.slowly(); RETURN NEW; END $$;
CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON dw.items
   FOR EACH ROW EXECUTE FUNCTION public.slow_row();
"""


@pytest.fixture(scope="module")
def source_cluster() -> Iterator[LogicalCluster]:
    with LogicalCluster.running() as running:
        yield running


@pytest.fixture(scope="module")
def target_cluster() -> Iterator[LogicalCluster]:
    with LogicalCluster.running() as running:
        yield running


def slow_down(url: str, seconds_per_row: float) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    run_sql(
        url,
        sql.SQL("ALTER DATABASE {} SET faults.delay = {}").format(
            sql.Identifier(str(name)), sql.Literal(str(seconds_per_row))
        ).as_string(None),
    )


def wait_until_sleeping(url: str) -> None:
    """Until a session of the run sleeps in `slowly()`: the run is mid-read or mid-write."""
    deadline = time.monotonic() + 60
    while not run_sql(url, "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'"):
        assert time.monotonic() < deadline, "the run never reached the slow rows"
        time.sleep(0.1)


def cdc_watermark(summit_url: str, pipeline_id: str) -> Any:
    rows = run_sql(
        summit_url,
        "SELECT last_processed_value FROM etl_cdc_watermarks WHERE pipeline_id = %s",
        (pipeline_id,),
    )
    return rows[0][0] if rows else None


# (pipeline case, server stopped, stage and message recorded). Incremental upsert: the
# source stops while the run reads it (slowly, through a view), or the target while the
# run writes it (slowly, through a trigger). CDC: either stops while a batch is being
# applied to the target; a stopped source then ends the read's connection, on which the
# batch's confirmation goes.
SHUTDOWN = "terminating connection due to administrator command"
CASES = [
    pytest.param("upsert", "source", "extraction", SHUTDOWN, id="incremental_upsert-source_down"),
    pytest.param("upsert", "target", "loading", SHUTDOWN, id="incremental_upsert-target_down"),
    pytest.param("trigger", "source", "extraction", SHUTDOWN, id="cdc_trigger-source_down"),
    pytest.param("trigger", "target", "loading", SHUTDOWN, id="cdc_trigger-target_down"),
]


@pytest.mark.parametrize(("case", "down", "stage", "message"), CASES)
def test_a_server_stopping_mid_run_fails_the_run_and_the_next_run_recovers(
    case: str,
    down: str,
    stage: str,
    message: str,
    source_cluster: LogicalCluster,
    target_cluster: LogicalCluster,
    cluster_database: MakeDatabase,
    summit: str,
) -> None:
    source, target = cluster_database(source_cluster), cluster_database(target_cluster)
    create_source(source)
    raw = pipeline(case, f"faults-{case}-{down}-down", source, target)
    slow_read = case == "upsert" and down == "source"
    if slow_read:
        run_sql(source, SLOW + SLOW_SOURCE)
        raw["source"]["table"] = "public.items_slow"
    mark = watermark if case == "upsert" else cdc_watermark
    assert run_job(raw, summit)
    before = mark(summit, raw["id"])
    change_source(source, deletes=case == "trigger")
    slow = source if slow_read else target
    if not slow_read:
        run_sql(target, SLOW + SLOW_TARGET)
    slow_down(slow, 0.005)

    worker = run_in_worker(raw, summit)
    wait_until_sleeping(slow)
    stopped = source_cluster if down == "source" else target_cluster
    stopped.stop()
    try:
        worker.join(60)
        assert worker.exitcode == 1  # failed, not hanging and not crashed
    finally:
        stopped.start()
    status, errors = run_sql(
        summit,
        "SELECT status, errors FROM pipeline_runs WHERE pipeline_id = %s "
        "ORDER BY created_at DESC LIMIT 1",
        (raw["id"],),
    )[0]
    assert status == "failed" and errors[0]["stage"] == stage, errors
    assert message in errors[0]["message"]
    assert mark(summit, raw["id"]) == before

    slow_down(slow, 0)
    assert run_job(raw, summit)
    assert tally(source, target) == CLEAN
    if case == "upsert":
        assert datetime.fromisoformat(watermark(summit, raw["id"])) == source_high_mark(source)
