"""Live CDC runs: a run the sensor launched keeps applying changes that arrive after it
started, reports each batch to Dagster, ends after its idle window (or when CDC is paused),
holds no target transaction open between batches, and a cancel ends it after the batch in
hand with that batch's offset committed."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance

import summit_etl.cdc.sources
from summit_etl.cdc.changes import ChangeBatch
from summit_etl.cdc.target import committed_offset
from summit_etl.identifiers import TableName
from summit_etl.load.locks import target_lock
from summit_etl.orchestration.keys import job_name, target_key
from summit_etl_tests.cdc.cdc_support import (
    Harness,
    change_log,
    create_source,
    insert,
    raw_pipeline,
    source_rows,
    target_rows,
)
from summit_etl_tests.support import run_sql

LIVE = {"pollIntervalSeconds": 1, "runPollMs": 50}


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _count(url: str) -> int:
    return int(run_sql(url, "SELECT count(*) FROM dw.users")[0][0]) if _exists(url) else 0


def _exists(url: str) -> bool:
    return bool(run_sql(url, "SELECT to_regclass('dw.users') IS NOT NULL")[0][0])


def _in_background(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test's main thread
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, failures


def _live(
    strategy: str, source: str, target_url: str, summit_url: str, instance: DagsterInstance, idle: float
) -> Harness:
    """A pipeline of `strategy` over three source rows, whose live runs idle `idle` seconds."""
    create_source(source, rows=3)
    raw = raw_pipeline(strategy, source, target_url, cdc_options={**LIVE, "idleWindowSeconds": idle})
    return Harness(raw, summit_url, instance)


@pytest.fixture
def long_window(
    make_database: Callable[[str], str], target_url: str, summit_url: str, instance: DagsterInstance
) -> tuple[str, Harness]:
    """A trigger pipeline over three rows whose live runs would idle for two minutes: the
    tests end them some other way. The source's URL and the pipeline."""
    source = make_database("src")
    return source, _live("trigger", source, target_url, summit_url, instance, idle=120)


def _observed(instance: DagsterInstance, cdc: Harness) -> list[dict[str, Any]]:
    records = instance.fetch_observations(target_key(cdc.config), limit=1000).records
    return [
        {k: v.value for k, v in r.asset_observation.metadata.items()}
        for r in records
        if r.asset_observation is not None
    ]


@pytest.mark.parametrize("strategy", ["trigger", "log_based"])
def test_a_live_run_applies_later_changes_reports_them_and_ends_when_idle(
    strategy: str, cdc_source: str, target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    source, idle = cdc_source, 2.0
    cdc = _live(strategy, source, target_url, summit_url, instance, idle)
    open_transactions: list[str] = []

    def write_while_live() -> None:
        _wait_for(lambda: _count(target_url) == 3, "the snapshot")
        insert(source, 4, 250)  # three batches of 100, after the run started
        _wait_for(lambda: _count(target_url) == 250, "the inserts")
        run_sql(source, "UPDATE public.users SET email = 'later@x.org' WHERE id = 1")
        run_sql(source, "DELETE FROM public.users WHERE id = 2")
        _wait_for(lambda: _count(target_url) == 249, "the delete")
        # Between batches the run holds no target transaction open.
        open_transactions.extend(
            state
            for (state,) in run_sql(
                target_url,
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'",
            )
        )

    writer, failures = _in_background(write_while_live)
    started = time.monotonic()
    runs = cdc.cycle()
    elapsed = time.monotonic() - started
    writer.join()
    assert not failures, failures
    assert len(runs) == 1 and runs[0].success
    assert elapsed >= idle
    assert open_transactions == []
    assert target_rows(target_url) == source_rows(source)
    log = change_log(target_url)
    assert {row[5] for row in log} == {runs[0].run_id}  # one run applied them all
    assert max(Counter(row[4] for row in log).values()) == 1
    assert len(log) == 3 + 247 + 1 + 1
    # One record for the run; its counts add up over every pass.
    record = run_sql(
        summit_url,
        "SELECT status, records_loaded FROM pipeline_runs WHERE pipeline_id = 'users-cdc'",
    )
    assert record == [("success", len(log))]
    # Dagster saw the batches as they were committed: the observations add up to the run.
    observed = _observed(instance, cdc)
    assert len(observed) >= 2
    assert sum(o["changes"] for o in observed) == len(log)
    assert sum(o["rows_deleted"] for o in observed) == 1
    assert any("lag_seconds" in o for o in observed)
    # Caught up when it ended: the mirror holds the target's offset.
    watermark = cdc.watermark()
    assert watermark is not None and watermark[2] is not None
    assert watermark[0] == committed_offset(cdc.config, summit_url).value
    assert not cdc.tick().run_requests


def test_a_paused_pipeline_ends_its_live_run_without_waiting_out_the_window(
    long_window: tuple[str, Harness], target_url: str, summit_url: str
) -> None:
    source, cdc = long_window

    def pause() -> None:
        _wait_for(lambda: _count(target_url) == 3, "the snapshot")
        run_sql(summit_url, "UPDATE pipelines SET enabled = false WHERE pipeline_id = 'users-cdc'")

    pauser, failures = _in_background(pause)
    started = time.monotonic()
    runs = cdc.cycle()
    pauser.join()
    assert not failures, failures
    assert len(runs) == 1 and runs[0].success
    assert time.monotonic() - started < 60


def test_a_cancel_ends_a_live_run_after_the_batch_in_hand_and_the_next_run_resumes(
    long_window: tuple[str, Harness],
    target_url: str,
    summit_url: str,
    instance: DagsterInstance,
) -> None:
    source, cdc = long_window

    def cancel_mid_batch() -> None:
        _wait_for(lambda: _count(target_url) == 3, "the snapshot")
        # The next batch's apply waits for the target lock: its changes are in hand.
        holder = psycopg.connect(target_url)
        try:
            holder.execute(target_lock(TableName("dw", "users")))
            insert(source, 4, 250)
            _wait_for(lambda: _waiting_for_advisory_lock(target_url), "the batch's apply")
            # Dagster cancels a run by interrupting its worker's main thread.
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        finally:
            holder.close()

    canceller, failures = _in_background(cancel_mid_batch)
    started = time.monotonic()
    runs = cdc.cycle()
    canceller.join()
    assert not failures, failures
    assert time.monotonic() - started < 60  # not the idle window
    # The batch in hand committed with its offset; the run stopped there and says so.
    assert len(runs) == 1 and runs[0].success
    assert _count(target_url) == 103
    assert committed_offset(cdc.config, summit_url).value == cdc.watermark()[0]
    assert run_sql(summit_url, "SELECT status, records_loaded FROM pipeline_runs") == [
        ("success", 103)
    ]
    # A run without the sensor (one pass) carries on from the committed offset.
    job = cdc.defs.resolve_job_def(job_name(cdc.config.id))
    assert job.execute_in_process(instance=instance).success
    assert target_rows(target_url) == source_rows(source)
    log = change_log(target_url)
    assert len(log) == 250 and max(Counter(row[4] for row in log).values()) == 1


def _waiting_for_advisory_lock(url: str) -> bool:
    return bool(
        run_sql(
            url,
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory' AND "
            "database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )[0][0]
    )


def test_a_live_run_killed_after_a_target_commit_is_resumed_without_loss_or_duplicates(
    long_window: tuple[str, Harness],
    target_url: str,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, cdc = long_window

    def crash(_: object, batch: ChangeBatch) -> None:
        if batch.release:  # captured changes (snapshot batches release nothing)
            raise RuntimeError("killed after the target commit")

    def change_while_live() -> None:
        _wait_for(lambda: _count(target_url) == 3, "the snapshot")
        # The source is never told: the captured rows stay, as after a crash there.
        monkeypatch.setattr(summit_etl.cdc.sources._Captured, "confirm", crash)
        run_sql(source, "UPDATE public.users SET email = 'live@x.org' WHERE id = 3")
        insert(source, 4, 150)

    writer, failures = _in_background(change_while_live)
    runs = cdc.cycle()
    writer.join()
    assert not failures, failures
    assert len(runs) == 1 and not runs[0].success
    assert len(change_log(target_url)) > 3  # the first live batch committed before the crash
    monkeypatch.undo()
    job = cdc.defs.resolve_job_def(job_name(cdc.config.id))
    assert job.execute_in_process(instance=instance).success
    assert target_rows(target_url) == source_rows(source)
    log = change_log(target_url)
    assert len(log) == 3 + 1 + 147 and max(Counter(row[4] for row in log).values()) == 1


def _sessions(url: str) -> int:
    """Sessions ever established to the database of `url` (PostgreSQL counts them at their end)."""
    return int(
        run_sql(url, "SELECT sessions FROM pg_stat_database WHERE datname = current_database()")[0][0]
    )


@pytest.mark.parametrize("strategy", ["trigger", "log_based"])
def test_a_live_run_holds_one_source_connection_and_reconnects_when_it_is_lost(
    strategy: str, cdc_source: str, target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    source = cdc_source
    cdc = _live(strategy, source, target_url, summit_url, instance, idle=3.0)
    terminated: list[int] = []

    def lose_the_connection_then_write() -> None:
        _wait_for(lambda: _count(target_url) == 3, "the snapshot")
        time.sleep(0.5)  # the run is probing now, between passes
        # What a source restart or an idle-session timeout does to the run's connection.
        terminated.extend(
            pid
            for (pid, done) in run_sql(
                source,
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'",
            )
            if done
        )
        insert(source, 4, 10)
        _wait_for(lambda: _count(target_url) == 10, "the inserts after the connection was lost")

    before = _sessions(source)
    writer, failures = _in_background(lose_the_connection_then_write)
    runs = cdc.cycle()
    writer.join()
    assert not failures, failures
    assert len(runs) == 1 and runs[0].success
    assert terminated, "the live run had no connection open on the source while it waited"
    assert target_rows(target_url) == source_rows(source)
    # About 120 probes in the idle windows (runPollMs 50): each opened two connections
    # before the run held one. Left: the sensor's probe, set-up, snapshot, the test's own.
    time.sleep(0.5)  # the last sessions' ends are counted
    opened = _sessions(source) - before
    assert opened < 30, f"{opened} sessions opened on the source"
