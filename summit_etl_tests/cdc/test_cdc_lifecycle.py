"""CDC across a pipeline's lifecycle: deleted and created again, a target emptied, a
capture replaced, capture started before the snapshot; and the capture's own contract
(append-only targets, SECURITY DEFINER capture, slot retention)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from dagster import DagsterInstance

from summit_etl.cdc.changes import visible_in
from summit_etl.cdc.logical import slot_name
from summit_etl.cdc.sources import change_source, release_capture, slot_retention
from summit_etl.lifecycle import retire_pipeline
from summit_etl.store.db import connect
from summit_etl.store.locks import CAPTURE, lock_pipeline
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

CAPTURE_TRIGGERS = "SELECT count(*) FROM pg_trigger WHERE tgname = 'summit_cdc_users'"


def test_a_recreated_trigger_pipeline_snapshots_its_new_source(
    make_database: Callable[[str], str], target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    old_source = make_database("src")
    create_source(old_source, rows=4)
    raw = raw_pipeline("trigger", old_source, target_url)
    old = Harness(raw, summit_url, instance)
    old_key = old.tick().run_requests[0].run_key
    assert old.run({"dagster/run_key": old_key}).success
    assert run_sql(target_url, "SELECT count(*) FROM dw.summit_cdc_offsets") == [(1,)]

    assert retire_pipeline(raw, summit_url)
    assert run_sql(target_url, "SELECT count(*) FROM dw.summit_cdc_offsets") == [(0,)]
    assert run_sql(summit_url, "SELECT count(*) FROM etl_cdc_watermarks") == [(0,)]
    assert run_sql(
        old_source, "SELECT count(*) FROM pg_trigger WHERE tgname = 'summit_cdc_users'"
    ) == [(0,)]

    # Created again: a fresh source, the target table dropped and created by the pipeline.
    run_sql(target_url, "DROP TABLE dw.users")
    new_source = make_database("src")
    create_source(new_source, rows=7)
    again = Harness(raw_pipeline("trigger", new_source, target_url), summit_url, instance)
    # Its first snapshot is a new run for Dagster, which remembers the old one's run keys.
    requests = again.tick().run_requests
    assert len(requests) == 1 and requests[0].run_key != old_key
    assert again.run({"dagster/run_key": requests[0].run_key}).success
    assert target_rows(target_url) == source_rows(new_source) and len(source_rows(new_source)) == 7
    run_sql(new_source, "UPDATE public.users SET email = 'new' WHERE id = 7")
    assert all(r.success for r in again.cycle())
    assert target_rows(target_url) == source_rows(new_source)


@pytest.mark.parametrize("strategy", ["trigger", "timestamp"])
def test_an_emptied_target_is_filled_again_and_the_log_says_why(
    strategy: str,
    source_url: str,
    target_url: str,
    summit_url: str,
    instance: DagsterInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    create_source(source_url, rows=5)
    cdc = Harness(raw_pipeline(strategy, source_url, target_url), summit_url, instance)
    assert all(r.success for r in cdc.cycle())
    run_sql(target_url, "TRUNCATE dw.users")
    with caplog.at_level(logging.WARNING, logger="summit_etl.cdc"):
        assert all(r.success for r in cdc.cycle())
    assert target_rows(target_url) == source_rows(source_url)
    assert not cdc.tick().run_requests  # caught up, no snapshot loop
    run_sql(target_url, "DROP TABLE dw.users")
    with caplog.at_level(logging.WARNING, logger="summit_etl.cdc"):
        assert all(r.success for r in cdc.cycle())
    assert target_rows(target_url) == source_rows(source_url)
    reasons = {getattr(r, "reason", None) for r in caplog.records}
    assert {
        "the target table is empty but the source is not",
        "the target table does not exist",
    } <= reasons

    # With the source emptied too, an empty target is simply caught up.
    run_sql(source_url, "DELETE FROM public.users")
    run_sql(target_url, "TRUNCATE dw.users")
    assert all(r.success for r in cdc.cycle())  # the captured deletes, if any
    assert not cdc.tick().run_requests


def test_a_capture_table_created_again_is_detected_and_snapshotted(
    source_url: str, target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    create_source(source_url, rows=3)
    cdc = Harness(raw_pipeline("trigger", source_url, target_url), summit_url, instance)
    assert all(r.success for r in cdc.cycle())
    run_sql(source_url, "UPDATE public.users SET email = 'one' WHERE id = 1")
    assert all(r.success for r in cdc.cycle())  # logged at capture position 1
    # Capture removed and installed again: a change in between was never captured, and the
    # new capture table numbers its changes from 1 again.
    run_sql(
        source_url, "DROP TRIGGER summit_cdc_users ON public.users; DROP TABLE public.users_changes"
    )
    run_sql(source_url, "UPDATE public.users SET email = 'uncaptured' WHERE id = 2")
    assert all(r.success for r in cdc.cycle())
    assert target_rows(target_url) == source_rows(source_url)
    run_sql(source_url, "UPDATE public.users SET email = 'again' WHERE id = 3")
    assert all(r.success for r in cdc.cycle())
    assert target_rows(target_url) == source_rows(source_url)


@pytest.mark.parametrize("strategy", ["trigger", "log_based"])
def test_a_change_right_after_capture_is_installed_is_applied_exactly_once(
    strategy: str,
    cdc_source: str,
    target_url: str,
    summit_url: str,
    instance: DagsterInstance,
) -> None:
    source = cdc_source
    create_source(source, rows=3)
    cdc = Harness(raw_pipeline(strategy, source, target_url), summit_url, instance)
    change_source(cdc.config).prepare()  # what POST .../cdc/start does before it answers
    run_sql(source, "UPDATE public.users SET email = 'after-start' WHERE id = 1")
    assert all(r.success for r in cdc.cycle())
    assert target_rows(target_url) == source_rows(source)
    # The snapshot holds the update: capture does not apply it a second time.
    assert [row[3]["email"] for row in change_log(target_url) if row[1] == "1"] == ["after-start"]
    run_sql(source, "UPDATE public.users SET email = 'later' WHERE id = 1")
    assert all(r.success for r in cdc.cycle())
    assert [row[3]["email"] for row in change_log(target_url) if row[1] == "1"] == [
        "after-start",
        "later",
    ]


def test_append_only_targets_keep_every_version_of_a_key(
    source_url: str, target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    create_source(source_url, rows=2)
    raw = raw_pipeline("trigger", source_url, target_url, loading={"strategy": "append_only"})
    cdc = Harness(raw, summit_url, instance)
    assert all(r.success for r in cdc.cycle())
    for email in ("second", "third"):
        run_sql(source_url, "UPDATE public.users SET email = %s WHERE id = 1", (email,))
        assert all(r.success for r in cdc.cycle())
    assert run_sql(target_url, "SELECT email FROM dw.users WHERE id = 1 ORDER BY email") == [
        ("second",),
        ("third",),
        ("u1@x.org",),
    ]
    constraints = "SELECT count(*) FROM pg_constraint WHERE conrelid = 'dw.users'::regclass AND contype IN ('p', 'u')"
    assert run_sql(target_url, constraints) == [(0,)]


def test_a_writer_without_rights_on_the_capture_table_can_still_write_the_source(
    source_url: str, target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    create_source(source_url, rows=1)
    cdc = Harness(raw_pipeline("trigger", source_url, target_url), summit_url, instance)
    assert all(r.success for r in cdc.cycle())
    role = f"summit_writer_{uuid.uuid4().hex[:8]}"
    run_sql(source_url, f"CREATE ROLE {role} LOGIN")
    try:
        run_sql(
            source_url,
            f"GRANT INSERT, UPDATE ON public.users TO {role}; GRANT USAGE ON SEQUENCE public.users_version TO {role}",
        )
        assert run_sql(
            source_url, "SELECT has_table_privilege(%s, 'public.users_changes', 'INSERT')", (role,)
        ) == [(False,)]
        writer = source_url.replace("postgres@", f"{role}@")
        run_sql(writer, "INSERT INTO public.users (id, email) VALUES (2, 'by-writer')")
        # Without SELECT the writer cannot name rows in a WHERE clause: every row it is.
        run_sql(writer, "UPDATE public.users SET email = 'changed'")
        # A search_path of the writer's cannot redirect what the capture function calls.
        run_sql(writer, "SET search_path = pg_temp, public; UPDATE public.users SET score = 1")
        assert all(r.success for r in cdc.cycle())
        assert target_rows(target_url) == source_rows(source_url)
    finally:
        run_sql(source_url, f"DROP OWNED BY {role}")
        run_sql(source_url, f"DROP ROLE {role}")


def test_slot_retention_is_reported_and_a_dropped_slot_means_a_new_snapshot(
    logical_database: Callable[[], str], target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    source = logical_database()
    create_source(source, rows=3)
    raw = raw_pipeline("log_based", source, target_url, pipeline_id="by-log")
    cdc = Harness(raw, summit_url, instance)
    capture = change_source(cdc.config)
    capture.prepare()
    assert all(r.success for r in cdc.cycle())
    insert(source, 4, 2000)  # WAL the slot holds until the pipeline reads it
    retained = slot_retention(
        [raw, raw_pipeline("trigger", source, target_url, pipeline_id="other")]
    )
    assert list(retained) == ["by-log"] and retained["by-log"] > 100_000

    capture.release()  # cdc/stop with dropSlotOnStop
    assert slot_retention([raw]) == {"by-log": 0}
    run_sql(source, "UPDATE public.users SET email = 'while-stopped' WHERE id = 1")
    capture.prepare()  # started again: a new slot, so the changes in between need a snapshot
    assert all(r.success for r in cdc.cycle())
    assert target_rows(target_url) == source_rows(source)
    assert run_sql(
        source,
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
        (slot_name("by-log"),),
    ) == [(1,)]

    unreachable = {**raw, "source": {**raw["source"], "url": "postgresql://postgres@127.0.0.1:1/x"}}
    assert slot_retention([unreachable]) == {"by-log": None}


def test_visibility_in_a_pg_snapshot_of_32_bit_xids() -> None:
    assert visible_in("100:105:102", 99) and visible_in("100:105:102", 101)
    assert not visible_in("100:105:102", 102) and not visible_in("100:105:102", 105)
    # After a wrap: xids of the previous epoch are old, the small ones are current.
    wrapped = f"{(1 << 32) + 10}:{(1 << 32) + 20}:"
    assert (
        visible_in(wrapped, 0xFFFFFFF0) and visible_in(wrapped, 15) and not visible_in(wrapped, 25)
    )


def test_a_tick_or_run_that_began_before_a_delete_installs_no_capture_after_it(
    source_url: str, target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    create_source(source_url, rows=3)
    cdc = Harness(
        raw_pipeline("trigger", source_url, target_url), summit_url, instance, stored=True
    )
    assert all(r.success for r in cdc.cycle())  # the snapshot installs the capture trigger
    assert run_sql(source_url, CAPTURE_TRIGGERS) == [(1,)]
    run_sql(source_url, "UPDATE public.users SET email = 'changed' WHERE id = 1")
    (launched,) = cdc.tick().run_requests  # a run the sensor asked for, not started yet

    # A delete holds the capture lock while it removes capture and the row; a tick that
    # began meanwhile waits, then finds the pipeline gone and installs nothing.
    ticks: list[Any] = []
    with connect(summit_url, autocommit=False) as conn, conn.transaction():
        lock_pipeline(conn, CAPTURE, cdc.config.id)
        waiting = threading.Thread(target=lambda: ticks.append(cdc.tick()))
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive(), "the tick did not wait for the capture lock"
        assert release_capture(cdc.raw)
        conn.execute("DELETE FROM pipelines WHERE pipeline_id = %s", (cdc.config.id,))
    waiting.join(30)
    (skipped,) = ticks
    assert not skipped.run_requests and "deleted" in (skipped.skip_message or "")
    assert run_sql(source_url, CAPTURE_TRIGGERS) == [(0,)]

    # The run launched before the delete starts after it: it ends with nothing applied.
    result = cdc.run({**launched.tags, "dagster/run_key": launched.run_key or ""})
    assert result.success
    assert run_sql(source_url, CAPTURE_TRIGGERS) == [(0,)]
    assert "changed" not in {row[1] for row in target_rows(target_url)}
