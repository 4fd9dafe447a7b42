"""A pipeline's full read as static partitions, run in process on a real Dagster instance
against real PostgreSQL: every partition together loads the table, one partition reloads
its own range only, and slices never write a target at the same time as a full run."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from dagster import DagsterInstance, Definitions

from summit_etl.orchestration.factory import build_definitions
from summit_etl.orchestration.keys import SLICE_TAG, job_name, slices_job_name
from summit_etl.registry import load_registry
from summit_etl.store import slices as slice_store
from summit_etl.store.db import connect
from summit_etl_tests.support import run_sql

ROWS = 8_000
PIPELINE = "items-sliced"


def _pipeline(source_url: str, target_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": PIPELINE,
        "name": "Items in slices",
        "source": {"url": source_url, "table": "src.items"},
        "extraction": {"strategy": "full", "parallelism": 4, "batchSize": 1000},
        "loading": {
            "strategy": "bulk",
            "targetTable": "dw.items",
            "targetUrl": target_url,
            "createTable": True,
        },
        **extra,
    }


def _definitions(tmp_path: Path, summit_url: str, pipeline: dict[str, Any]) -> Definitions:
    (tmp_path / "items.yaml").write_text(yaml.safe_dump(pipeline))
    return build_definitions(load_registry(tmp_path, summit_url), summit_url)


@pytest.fixture
def source(source_url: str) -> str:
    run_sql(
        source_url,
        "CREATE SCHEMA src; CREATE TABLE src.items (id bigint PRIMARY KEY, v text NOT NULL);"
        f"INSERT INTO src.items SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g;"
        "ANALYZE src.items",
    )
    return source_url


def _rows(url: str) -> list[tuple]:
    return run_sql(
        url,
        "SELECT id, v FROM {} ORDER BY id".format("src.items" if "_src_" in url else "dw.items"),
    )


def _run_slices(defs: Definitions, instance: DagsterInstance, keys: list[str], **tags: str) -> list:
    job = defs.resolve_job_def(slices_job_name(PIPELINE))
    return [
        job.execute_in_process(instance=instance, partition_key=k, tags=tags, raise_on_error=False)
        for k in keys
    ]


def test_all_partitions_load_the_table_and_one_reloads_its_range_only(
    tmp_path: Path, source: str, target_url: str, summit_url: str
) -> None:
    # Infinity in the first and last slices: those read again with the column as text.
    run_sql(
        source,
        "ALTER TABLE src.items ADD COLUMN at timestamptz NOT NULL DEFAULT '2024-01-01';"
        f"UPDATE src.items SET at = 'infinity' WHERE id IN (2, {ROWS - 1})",
    )
    defs = _definitions(tmp_path, summit_url, _pipeline(source, target_url))
    job = defs.resolve_job_def(slices_job_name(PIPELINE))
    keys = job.partitions_def.get_partition_keys()
    assert keys == ["1-of-4", "2-of-4", "3-of-4", "4-of-4"]
    with DagsterInstance.ephemeral() as instance:
        results = _run_slices(defs, instance, keys, **{"dagster/backfill": "b1"})
        assert all(r.success for r in results)
        assert instance.get_run_by_id(results[0].run_id).tags[SLICE_TAG] == PIPELINE
        loaded = [
            r.asset_materializations_for_node(f"{slices_job_name(PIPELINE)}_load")[0]
            for r in results
        ]
    assert _rows(target_url) == _rows(source)
    at = "SELECT id, at::text FROM {} WHERE at = 'infinity' ORDER BY id"
    assert run_sql(target_url, at.format("dw.items")) == [(2, "infinity"), (ROWS - 1, "infinity")]
    # Each slice loaded its share (the histogram splits the ids evenly).
    assert [m.metadata["slice"].value for m in loaded] == keys
    assert all(
        0.75 * ROWS / 4 < m.metadata["records_loaded"].value < 1.25 * ROWS / 4 for m in loaded
    )
    recorded = run_sql(
        summit_url, "SELECT slice, trigger, status FROM pipeline_runs ORDER BY slice"
    )
    assert recorded == [(k, "backfill", "success") for k in keys]

    with connect(summit_url) as conn:
        plan = slice_store.current(conn, PIPELINE)
    assert plan is not None and plan.made_for == "b1"
    second, third = plan.ranges()[1], plan.ranges()[2]
    # Rows change in ranges 2 and 3, and a row leaves range 2; only slice 2 is run again.
    run_sql(source, f"UPDATE src.items SET v = 'new' WHERE {second.predicate().as_string(None)}")
    run_sql(source, f"UPDATE src.items SET v = 'new' WHERE {third.predicate().as_string(None)}")
    run_sql(source, f"DELETE FROM src.items WHERE id = {int(str(second.lower))}")
    with DagsterInstance.ephemeral() as instance:
        (rerun,) = _run_slices(defs, instance, ["2-of-4"])
        assert rerun.success
    in_range = f"WHERE {second.predicate().as_string(None)}"
    assert run_sql(target_url, f"SELECT id, v FROM dw.items {in_range} ORDER BY id") == run_sql(
        source, f"SELECT id, v FROM src.items {in_range} ORDER BY id"
    )
    outside = run_sql(
        target_url,
        f"SELECT count(*) FILTER (WHERE v = 'new'), count(*) FROM dw.items "
        f"WHERE NOT ({second.predicate().as_string(None)})",
    )
    assert outside == [(0, ROWS - (int(str(second.upper)) - int(str(second.lower))))]
    with connect(summit_url) as conn:  # outside a backfill, the last split is reused
        assert slice_store.current(conn, PIPELINE) == plan


def test_what_cannot_be_sliced_has_no_slices_job_or_fails_saying_why(
    tmp_path: Path, source: str, target_url: str, summit_url: str
) -> None:
    appended = _pipeline(source, target_url)
    appended["loading"]["strategy"] = "append_only"
    defs = _definitions(tmp_path, summit_url, appended)
    assert not defs.get_repository_def().has_job(slices_job_name(PIPELINE))

    # The split column sorts otherwise in the target: its ranges would be other rows there.
    run_sql(target_url, "CREATE SCHEMA dw; CREATE TABLE dw.items (id text PRIMARY KEY, v text)")
    run_sql(target_url, "INSERT INTO dw.items VALUES ('9', 'kept')")
    defs = _definitions(tmp_path, summit_url, _pipeline(source, target_url))
    with DagsterInstance.ephemeral() as instance:
        (retyped,) = _run_slices(defs, instance, ["1-of-4"])
        # A keyless source splits by ctid, which names nothing in the target (a new
        # backfill: the split is made again).
        run_sql(source, "ALTER TABLE src.items DROP CONSTRAINT items_pkey")
        (keyless,) = _run_slices(defs, instance, ["1-of-4"], **{"dagster/backfill": "b2"})
    assert not keyless.success and not retyped.success
    messages = dict(
        (run_id, errors[0]["message"])
        for run_id, errors in run_sql(summit_url, "SELECT id, errors FROM pipeline_runs")
    )
    assert "has no primary key" in messages[keyless.run_id]
    assert "in the target dw.items but bigint in the source" in messages[retyped.run_id]
    assert run_sql(target_url, "SELECT * FROM dw.items") == [("9", "kept")]


# --- a slice and a full run of one target never write it at the same time ----------------

_held = threading.Event()
_release = threading.Event()
_calls: dict[str, int] = {}


def hold_second_batch(frame: pd.DataFrame) -> pd.DataFrame:
    """A custom step: in the thread named 'held', the second batch (the first is read
    before the load takes its lock) waits for the test, the target's lock held."""
    name = threading.current_thread().name
    _calls[name] = _calls.get(name, 0) + 1
    if name.startswith("held") and _calls[name] == 2:
        _held.set()
        assert _release.wait(60)
    return frame


def _waiting_on_advisory_locks(url: str) -> int:
    return run_sql(
        url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )[0][0]


def test_slices_load_together_and_a_full_run_waits_for_them(
    tmp_path: Path, source: str, target_url: str, summit_url: str
) -> None:
    _held.clear(), _release.clear(), _calls.clear()
    custom = {"transformations": [{"type": "custom", "function": f"{__name__}:hold_second_batch"}]}
    defs = _definitions(tmp_path, summit_url, _pipeline(source, target_url, transformation=custom))
    with DagsterInstance.ephemeral() as instance:
        # The first backfill creates the target and stores the split.
        assert all(r.success for r in _run_slices(defs, instance, ["1-of-4", "2-of-4"]))
        run_sql(source, "UPDATE src.items SET v = 'after'")
        outcomes: dict[str, Any] = {}

        def run(name: str, launch: Any) -> threading.Thread:
            thread = threading.Thread(
                target=lambda: outcomes.__setitem__(name, launch()), name=name
            )
            thread.start()
            return thread

        slice_one = run("held-slice", lambda: _run_slices(defs, instance, ["1-of-4"])[0])
        assert _held.wait(60)  # slice 1 holds its range, mid-COPY
        # Another range loads meanwhile: slices share the target.
        slice_three = run("free-slice", lambda: _run_slices(defs, instance, ["3-of-4"])[0])
        slice_three.join(60)
        assert outcomes["free-slice"].success
        # A full run waits for slice 1 to commit.
        full = run(
            "full",
            lambda: defs.resolve_job_def(job_name(PIPELINE)).execute_in_process(instance=instance),
        )
        deadline = time.monotonic() + 30
        while _waiting_on_advisory_locks(target_url) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _waiting_on_advisory_locks(target_url) == 1
        assert full.is_alive()
        _release.set()
        slice_one.join(60)
        full.join(120)
        assert outcomes["held-slice"].success and outcomes["full"].success
        assert _rows(target_url) == _rows(source)

        # A slice whose split changed while it loaded (another backfill's) writes nothing.
        _held.clear(), _release.clear()
        run_sql(source, "UPDATE src.items SET v = 'later'")
        slice_two = run("held-again", lambda: _run_slices(defs, instance, ["2-of-4"])[0])
        assert _held.wait(60)
        run_sql(summit_url, "UPDATE etl_slice_plans SET version = version + 1")
        _release.set()
        slice_two.join(60)
    ends = dict(
        run_sql(
            summit_url,
            "SELECT coalesce(slice, 'full'), end_time FROM pipeline_runs "
            "WHERE status = 'success' AND id IN (%s, %s)",
            (outcomes["held-slice"].run_id, outcomes["full"].run_id),
        )
    )
    assert ends["1-of-4"] < ends["full"]
    assert not outcomes["held-again"].success
    ((errors,),) = run_sql(
        summit_url,
        "SELECT errors FROM pipeline_runs WHERE id = %s",
        (outcomes["held-again"].run_id,),
    )
    assert "changed while slice 2-of-4 loaded" in errors[0]["message"]
    assert run_sql(target_url, "SELECT count(*) FROM dw.items WHERE v = 'later'") == [(0,)]
