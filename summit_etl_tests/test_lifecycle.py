"""Deleting a pipeline retires what it owned; one created again with its id starts fresh."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.lifecycle import retire_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store.db import connect
from summit_etl_tests.support import run_sql


def _incremental(source: str, target: str) -> dict[str, Any]:
    return {
        "id": "orders",
        "name": "Orders",
        "source": {"url": source, "table": "public.orders"},
        "extraction": {"strategy": "incremental", "incrementalColumn": "seq"},
        "watermark": {"type": "numeric"},
        "loading": {"strategy": "upsert", "targetTable": "dw.orders", "targetUrl": target,
                    "upsertKey": ["id"], "createTable": True},
    }


def _orders(url: str, rows: int) -> None:
    run_sql(url, "CREATE TABLE public.orders (id bigint PRIMARY KEY, seq bigint NOT NULL)")
    run_sql(url, "INSERT INTO public.orders SELECT g, g FROM generate_series(1, %s) g", (rows,))


def _run(raw: dict[str, Any], summit_url: str) -> Any:
    config = parse_pipeline(raw, "test")
    return run_pipeline(config, RunRequest(run_id=str(uuid.uuid4())), summit_url)


def test_a_recreated_incremental_pipeline_reads_every_row_of_its_new_source(
    make_database: Callable[[str], str], summit_url: str
) -> None:
    old_source, old_target = make_database("src"), make_database("dst")
    _orders(old_source, 920)
    raw = _incremental(old_source, old_target)
    with connect(summit_url) as conn:
        pipeline_store.create(conn, raw, enabled=True)
    assert _run(raw, summit_url).counts.records_extracted == 920

    assert retire_pipeline(raw, summit_url)
    # History stays for audit, retired; the runbook's query by source_table still sees it.
    assert run_sql(summit_url, "SELECT count(*), count(retired_at) FROM etl_watermarks WHERE source_table = 'public.orders'") == [(1, 1)]
    assert run_sql(summit_url, "SELECT count(*) FROM pipelines") == [(0,)]

    # Same id, a fresh source of 1,000 rows whose keys start below the old watermark.
    new_source, new_target = make_database("src"), make_database("dst")
    _orders(new_source, 1000)
    recreated = _incremental(new_source, new_target)
    outcome = _run(recreated, summit_url)
    assert outcome.counts.records_extracted == 1000
    assert run_sql(new_target, "SELECT count(*) FROM dw.orders") == [(1000,)]
    assert run_sql(summit_url, "SELECT last_loaded_value FROM etl_watermarks WHERE retired_at IS NULL") == [("1000",)]
