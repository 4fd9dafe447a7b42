"""Cancelling a real Dagster run tells the truth: `cancelled` only when the work rolled
back; a run whose target commit happened inside the grace window records its real outcome.

Dagster cancels a run by interrupting its worker's main thread (SIGINT); the tests send that
signal to their own process while `materialize` runs the pipeline's asset in it, with the
run held at the moment under test by a lock the test holds.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, materialize

from summit_etl.identifiers import TableName
from summit_etl.load.locks import target_lock
from summit_etl.orchestration.assets import pipeline_asset
from summit_etl.orchestration.resources import SummitDatabase
from summit_etl.registry import parse_pipeline
from summit_etl.store import runs as run_store
from summit_etl_tests.support import run_sql


@pytest.fixture
def source(source_url: str) -> str:
    run_sql(
        source_url,
        "CREATE TABLE public.events (id bigint PRIMARY KEY, body text, updated_at timestamptz NOT NULL);"
        "INSERT INTO public.events SELECT g, 'e' || g, now() FROM generate_series(1, 100) g",
    )
    return source_url


def pipeline(source_url: str, target_url: str) -> Any:
    return parse_pipeline(
        {
            "id": "events",
            "name": "Events",
            "source": {"url": source_url, "table": "public.events"},
            "extraction": {"strategy": "incremental", "incrementalColumn": "updated_at"},
            "loading": {
                "strategy": "upsert",
                "targetTable": "dw.events",
                "targetUrl": target_url,
                "createTable": True,
                "upsertKey": ["id"],
            },
        },
        "test",
    )


def waiting(url: str, lock: str) -> bool:
    """A session of this database waits for a lock matching `lock` (others' tests share
    the server, and pg_locks shows every database's locks)."""
    return bool(
        run_sql(
            url,
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND "
            f"database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND {lock}",
        )[0][0]
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def cancel_when(
    condition: Callable[[], bool], what: str, release: Callable[[], None], summit_url: str
) -> threading.Thread:
    """In the background: once `condition` holds, cancel the run as the API does (record
    it `cancelled`, then have Dagster interrupt the worker), then `release` the lock that
    held the run."""
    failures: list[AssertionError] = []

    def cancel() -> None:
        try:
            wait_for(condition, what)
            with psycopg.connect(summit_url, autocommit=True) as conn:
                running = conn.execute(
                    "SELECT id, pipeline_id FROM pipeline_runs WHERE status = 'running'"
                ).fetchone()
                assert running is not None, "no running run to cancel"
                run_store.mark_ended_abnormally(conn, *running, "cancelled", None)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # the run sits on the lock while the interrupt is pending
        except AssertionError as exc:
            failures.append(exc)
        finally:
            release()

    thread = threading.Thread(target=cancel)
    thread.failures = failures  # type: ignore[attr-defined]
    thread.start()
    return thread


def run_asset(config: Any, summit_url: str) -> Any:
    with DagsterInstance.ephemeral() as instance:
        return materialize(
            [pipeline_asset(config)],
            resources={"summit": SummitDatabase(url=summit_url)},
            instance=instance,
            raise_on_error=False,
        )


def recorded(summit_url: str, run_id: str) -> tuple:
    return run_sql(
        summit_url,
        "SELECT status, records_loaded, watermark_to IS NOT NULL FROM pipeline_runs WHERE id = %s",
        (run_id,),
    )[0]


def test_a_cancel_after_the_target_commit_records_the_real_outcome(
    source: str, target_url: str, summit_url: str
) -> None:
    # The watermark write waits on this lock: the target has committed, the record not yet.
    holder = psycopg.connect(summit_url)
    holder.execute("LOCK TABLE etl_watermarks IN SHARE MODE")

    def committed_and_waiting() -> bool:
        tables = run_sql(target_url, "SELECT to_regclass('dw.events') IS NOT NULL")[0][0]
        rows = tables and run_sql(target_url, "SELECT count(*) FROM dw.events")[0][0] == 100
        return bool(rows) and waiting(summit_url, "relation = 'etl_watermarks'::regclass")

    canceller = cancel_when(committed_and_waiting, "the target commit", holder.close, summit_url)
    result = run_asset(pipeline(source, target_url), summit_url)
    canceller.join()
    assert not canceller.failures  # type: ignore[attr-defined]
    assert result.success
    assert recorded(summit_url, result.run_id) == ("success", 100, True)
    assert run_sql(summit_url, "SELECT records_loaded FROM etl_watermarks") == [(100,)]


def test_a_cancel_before_the_target_commit_rolls_back_and_records_cancelled(
    source: str, target_url: str, summit_url: str
) -> None:
    # The load waits for the target lock: nothing is written yet.
    holder = psycopg.connect(target_url)
    holder.execute(target_lock(TableName("dw", "events")))
    canceller = cancel_when(
        lambda: waiting(target_url, "locktype = 'advisory'"),
        "the load to wait for the target",
        holder.close,
        summit_url,
    )
    result = run_asset(pipeline(source, target_url), summit_url)
    canceller.join()
    assert not canceller.failures  # type: ignore[attr-defined]
    assert not result.success
    assert recorded(summit_url, result.run_id) == ("cancelled", 0, False)
    assert run_sql(target_url, "SELECT to_regclass('dw.events')") == [(None,)]
    assert run_sql(summit_url, "SELECT count(*) FROM etl_watermarks") == [(0,)]


def test_a_cancel_while_a_cdc_batch_commits_ends_the_run_after_that_batch(
    source: str, target_url: str, summit_url: str
) -> None:
    config = parse_pipeline(
        {
            "id": "events-cdc",
            "name": "Events CDC",
            "source": {"url": source, "table": "public.events"},
            "extraction": {"strategy": "cdc"},
            "cdc": {
                "strategy": "timestamp",
                "trackingColumn": "updated_at",
                "primaryKeys": ["id"],
                "batchSize": 40,
            },
            "loading": {
                "strategy": "upsert",
                "targetTable": "dw.events",
                "targetUrl": target_url,
                "createTable": True,
            },
        },
        "test",
    )
    run_sql(source, "UPDATE public.events SET updated_at = now() - make_interval(secs => 200 - id)")
    # The first batch's apply waits for the target lock: its changes are in hand.
    holder = psycopg.connect(target_url)
    holder.execute(target_lock(TableName("dw", "events")))
    canceller = cancel_when(
        lambda: waiting(target_url, "locktype = 'advisory'"),
        "the first batch's apply",
        holder.close,
        summit_url,
    )
    first = run_asset(config, summit_url)
    canceller.join()
    assert not canceller.failures  # type: ignore[attr-defined]
    assert first.success
    assert recorded(summit_url, first.run_id) == ("success", 40, True)
    assert run_sql(target_url, "SELECT count(*) FROM dw.events") == [(40,)]
    rest = run_asset(config, summit_url)
    assert recorded(summit_url, rest.run_id) == ("success", 60, True)
    assert run_sql(target_url, "SELECT count(*), count(DISTINCT id) FROM dw.events") == [(100, 100)]


def test_a_cancel_whose_interrupt_never_arrives_still_stops_the_run_between_batches(
    source_url: str, target_url: str, summit_url: str
) -> None:
    # The target takes 50 ms a row and rows are 100 kB, so the loader pulls its batches of
    # ten while it writes: a five-second load, in one blocking driver call.
    run_sql(
        target_url,
        "CREATE SCHEMA dw; CREATE TABLE dw.slow (id int, body text);"
        "CREATE FUNCTION dw.slowly() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$;"
        "CREATE TRIGGER slowly BEFORE INSERT ON dw.slow FOR EACH ROW EXECUTE FUNCTION dw.slowly()",
    )
    query = "SELECT g AS id, repeat(md5(g::text), 3200) AS body FROM generate_series(1, 100) g"
    config = parse_pipeline(
        {
            "id": "slow",
            "name": "Slow",
            "source": {"url": source_url, "query": query},
            "extraction": {"strategy": "full", "batchSize": 10},
            "loading": {"strategy": "append_only", "targetTable": "dw.slow", "targetUrl": target_url},
        },
        "test",
    )
    failures: list[BaseException] = []
    cancelled_at: list[float] = []

    def cancel_without_interrupt(instance: DagsterInstance) -> None:
        # As when a driver swallowed the SIGINT: Dagster marks the run, no signal arrives.
        try:
            wait_for(lambda: waiting_on_copy(target_url), "the load to write")
            (run,) = instance.get_runs()
            instance.report_run_canceling(run)
            cancelled_at.append(time.monotonic())
        except BaseException as exc:
            failures.append(exc)

    with DagsterInstance.ephemeral() as instance:
        canceller = threading.Thread(target=cancel_without_interrupt, args=(instance,))
        canceller.start()
        result = materialize(
            [pipeline_asset(config)],
            resources={"summit": SummitDatabase(url=summit_url)},
            instance=instance,
            raise_on_error=False,
        )
        ended = time.monotonic()
        canceller.join()
    assert not failures
    assert not result.success
    assert ended - cancelled_at[0] < 3  # a batch or two later, not at the load's end
    assert recorded(summit_url, result.run_id) == ("cancelled", 0, False)
    assert run_sql(target_url, "SELECT count(*) FROM dw.slow") == [(0,)]


def waiting_on_copy(url: str) -> bool:
    return bool(
        run_sql(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'active' AND query LIKE 'COPY%' AND pid <> pg_backend_pid()",
        )[0][0]
    )
