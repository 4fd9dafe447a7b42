"""Whole runs through the engine: real source, real target, recorded in the summit tables."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from summit_etl.engine import RunRequest, StageFailure, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl_tests.support import run_sql

SOURCE_DDL = """
CREATE TABLE public.items (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    qty integer,
    price numeric(12,2),
    active boolean,
    doc jsonb,
    updated_at timestamptz NOT NULL
);
"""


def fill(url: str, count: int) -> None:
    run_sql(
        url,
        """
        INSERT INTO public.items
        SELECT g, 'item ' || g, g %% 7, g / 4.0, g %% 2 = 0,
               jsonb_build_object('n', g), '2025-01-01T00:00:00Z'::timestamptz + make_interval(secs => g)
          FROM generate_series(1, %s) g
        """,
        (count,),
    )


def pipeline(source_url: str, target_url: str, **overrides: Any) -> Any:
    raw: dict[str, Any] = {
        "id": "items",
        "name": "Items",
        "source": {"url": source_url, "table": "public.items"},
        "extraction": {"strategy": "full", "batchSize": 1000},
        "loading": {
            "strategy": "bulk",
            "targetTable": "dw.items",
            "targetUrl": target_url,
            "createTable": True,
            "upsertKey": ["id"],
        },
    }
    raw.update(overrides)
    return parse_pipeline(raw, "test")


def run(config: Any, summit_url: str, **request: Any) -> Any:
    return run_pipeline(config, RunRequest(run_id=str(uuid.uuid4()), **request), summit_url)


@pytest.fixture
def source(source_url: str) -> str:
    run_sql(source_url, SOURCE_DDL)
    fill(source_url, 2500)
    return source_url


def test_full_load_into_an_empty_target(source: str, target_url: str, summit_url: str) -> None:
    outcome = run(pipeline(source, target_url), summit_url)
    assert outcome.status == "success"
    assert outcome.counts.records_extracted == 2500
    assert outcome.counts.records_loaded == 2500
    source_rows = run_sql(source, "SELECT * FROM public.items ORDER BY id")
    target_rows = run_sql(target_url, "SELECT * FROM dw.items ORDER BY id")
    assert target_rows == source_rows
    column_types = run_sql(
        target_url,
        "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns "
        "JOIN pg_attribute ON attrelid = 'dw.items'::regclass AND attname = column_name "
        "WHERE table_schema = 'dw' ORDER BY ordinal_position",
    )
    assert [t for _, t in column_types] == [
        "bigint",
        "text",
        "integer",
        "numeric(12,2)",
        "boolean",
        "jsonb",
        "timestamp with time zone",
    ]


def test_the_run_is_recorded_with_counts_and_stage_durations(
    source: str, target_url: str, summit_url: str
) -> None:
    run_id = str(uuid.uuid4())
    run_pipeline(pipeline(source, target_url), RunRequest(run_id=run_id), summit_url)
    row = run_sql(
        summit_url,
        "SELECT pipeline_id, status, trigger, records_extracted, records_loaded, metrics, errors "
        "FROM pipeline_runs WHERE id = %s",
        (run_id,),
    )[0]
    assert row[:5] == ("items", "success", "manual", 2500, 2500)
    metrics = row[5]
    for key in (
        "extractionDurationMs",
        "transformationDurationMs",
        "loadingDurationMs",
        "totalDurationMs",
    ):
        assert metrics[key] >= 0
    assert metrics["totalDurationMs"] >= metrics["loadingDurationMs"] > 0
    assert row[6] == []


def test_target_with_fewer_columns_gets_only_its_own(
    source: str, target_url: str, summit_url: str
) -> None:
    run_sql(
        target_url, "CREATE SCHEMA dw; CREATE TABLE dw.items (id bigint PRIMARY KEY, name text)"
    )
    outcome = run(pipeline(source, target_url), summit_url)
    assert outcome.load.ignored_columns == ["qty", "price", "active", "doc", "updated_at"]
    assert run_sql(target_url, "SELECT count(*), max(name) FROM dw.items") == [(2500, "item 999")]


def test_a_failing_load_is_recorded_failed_at_loading_with_the_database_message(
    source: str, target_url: str, summit_url: str
) -> None:
    run_sql(
        target_url,
        "CREATE SCHEMA dw; CREATE TABLE dw.items (id bigint PRIMARY KEY, qty integer CHECK (qty < 6))",
    )
    run_id = str(uuid.uuid4())
    with pytest.raises(StageFailure) as info:
        run_pipeline(pipeline(source, target_url), RunRequest(run_id=run_id), summit_url)
    assert info.value.stage == "loading"
    status, errors = run_sql(
        summit_url, "SELECT status, errors FROM pipeline_runs WHERE id = %s", (run_id,)
    )[0]
    assert status == "failed"
    assert errors[0]["stage"] == "loading"
    assert 'violates check constraint "items_qty_check"' in errors[0]["message"]
    assert run_sql(target_url, "SELECT count(*) FROM dw.items") == [(0,)]  # nothing half-loaded


def test_an_unreachable_source_fails_at_extraction(target_url: str, summit_url: str) -> None:
    config = pipeline("postgresql://postgres@127.0.0.1:1/nowhere", target_url)
    with pytest.raises(StageFailure) as info:
        run(config, summit_url)
    assert info.value.stage == "extraction"


def test_transformations_run_between_extract_and_load(
    source: str, target_url: str, summit_url: str
) -> None:
    config = pipeline(
        source,
        target_url,
        transformation={
            "transformations": [
                {"type": "filter", "expression": "qty > 3"},
                {"type": "derive", "columns": {"total": "qty * price"}},
            ]
        },
    )
    outcome = run(config, summit_url)
    expected = run_sql(source, "SELECT count(*) FROM public.items WHERE qty > 3")[0][0]
    assert outcome.counts.records_loaded == expected
    assert outcome.counts.records_filtered == 2500 - expected
    assert (
        outcome.counts.records_extracted
        == outcome.counts.records_loaded + outcome.counts.records_filtered
    )
    assert run_sql(target_url, "SELECT total FROM dw.items WHERE id = 11") == [(Decimal("11.00"),)]


def test_logs_are_json_lines_with_pipeline_and_run(
    source: str, target_url: str, summit_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from summit_etl.logs import configure_logging
    from summit_etl.settings import Settings

    log_file = tmp_path / "etl-service.log"
    monkeypatch.setenv("SUMMIT_LOG_FILE", str(log_file))
    configure_logging(Settings.from_env())
    run_id = str(uuid.uuid4())
    run_pipeline(pipeline(source, target_url), RunRequest(run_id=run_id), summit_url)
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    mine = [e for e in entries if e.get("pipelineId") == "items" and e.get("runId") == run_id]
    assert [e["message"] for e in mine] == ["run started", "run finished"]
    assert mine[-1]["recordsLoaded"] == 2500
    assert {"timestamp", "level", "durationMs"} <= set(mine[-1])


def test_timestamps_keep_their_precision(source_url: str, target_url: str, summit_url: str) -> None:
    run_sql(source_url, SOURCE_DDL)
    run_sql(
        source_url,
        "INSERT INTO public.items (id, name, updated_at) VALUES (1, 'a', '2025-05-05 10:00:00.123456+02')",
    )
    run(pipeline(source_url, target_url), summit_url)
    assert run_sql(target_url, "SELECT updated_at FROM dw.items") == [
        (dt.datetime(2025, 5, 5, 8, 0, 0, 123456, tzinfo=dt.UTC),)
    ]


def test_debug_level_adds_sql_and_stage_timings(
    source: str, target_url: str, summit_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from summit_etl.logs import configure_logging
    from summit_etl.settings import Settings

    log_file = tmp_path / "debug.log"
    monkeypatch.setenv("SUMMIT_LOG_FILE", str(log_file))
    monkeypatch.setenv("LOG_LEVEL", "debug")
    configure_logging(Settings.from_env())
    try:
        run(pipeline(source, target_url), summit_url)
    finally:
        monkeypatch.setenv("LOG_LEVEL", "info")
        configure_logging(Settings.from_env())
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(
        e.get("sql", "").startswith("SELECT ") and 'FROM "public"."items"' in e["sql"] for e in entries
    )
    assert any('TRUNCATE "dw"."items"' in e.get("sql", "") for e in entries)  # in its retry block
    timings = next(e for e in entries if e["message"] == "stage timings")
    assert {"extractionDurationMs", "loadingDurationMs"} <= set(timings)
