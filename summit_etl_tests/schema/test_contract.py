"""Schema contracts on real runs: evolve (default for targets Summit created), freeze
(default for other targets) and fail; every change recorded in etl_schema_changes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from summit_etl.engine import RunRequest, StageFailure, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl.schema.contract import widens
from summit_etl_tests.support import run_sql


def _config(source_url: str, target_url: str, **extra: Any) -> Any:
    raw: dict[str, Any] = {
        "id": "items",
        "name": "Items",
        "source": {"url": source_url, "table": "public.items"},
        "loading": {
            "strategy": "upsert",
            "targetTable": "dw.items",
            "targetUrl": target_url,
            "createTable": True,
            "upsertKey": ["id"],
        },
        **extra,
    }
    return parse_pipeline(raw, "test")


def _run(config: Any, summit_url: str) -> Any:
    return run_pipeline(config, RunRequest(run_id=str(uuid.uuid4())), summit_url)


def _changes(summit_url: str) -> list[tuple]:
    return run_sql(
        summit_url,
        "SELECT column_name, change, source_type, target_type, action FROM etl_schema_changes ORDER BY id",
    )


def _types(url: str) -> dict[str, str]:
    rows = run_sql(
        url,
        "SELECT attname, format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' NOT NULL' ELSE '' END "
        "FROM pg_attribute WHERE attrelid = 'dw.items'::regclass AND attnum > 0 AND NOT attisdropped",
    )
    return dict(rows)


@pytest.fixture
def items(source_url: str) -> str:
    run_sql(
        source_url,
        "CREATE TABLE public.items (id int PRIMARY KEY, name varchar(10), qty int, "
        "price numeric(8,2), gone text NOT NULL)",
    )
    run_sql(source_url, "INSERT INTO public.items VALUES (1, 'a', 1, 1.50, 'x')")
    return source_url


def test_evolve_adds_widens_and_keeps_dropped_columns(items: str, target_url: str, summit_url: str) -> None:
    config = _config(items, target_url)
    assert _run(config, summit_url).status == "success"
    run_sql(
        items,
        "ALTER TABLE public.items ADD COLUMN note text; "
        "ALTER TABLE public.items ALTER COLUMN name TYPE varchar(20), ALTER COLUMN qty TYPE bigint, "
        "ALTER COLUMN price TYPE numeric(12,2); ALTER TABLE public.items DROP COLUMN gone; "
        "INSERT INTO public.items VALUES (2, 'a longer name', 9000000000, 1234567.25, 'new')",
    )
    assert _run(config, summit_url).status == "success"
    assert _types(target_url) == {
        "id": "integer NOT NULL",
        "name": "character varying(20)",
        "qty": "bigint",
        "price": "numeric(12,2)",
        "gone": "text",
        "note": "text",
    }
    assert run_sql(target_url, "SELECT id, name, qty, price::text, gone, note FROM dw.items ORDER BY id") == [
        (1, "a", 1, "1.50", "x", None),
        (2, "a longer name", 9000000000, "1234567.25", None, "new"),
    ]
    assert sorted(_changes(summit_url)) == [
        ("gone", "dropped", None, "text", "kept"),
        ("name", "retyped", "character varying(20)", "character varying(10)", "widened"),
        ("note", "added", "text", None, "added_column"),
        ("price", "retyped", "numeric(12,2)", "numeric(8,2)", "widened"),
        ("qty", "retyped", "bigint", "integer", "widened"),
    ]


def test_evolve_refuses_an_incompatible_change_naming_the_column(
    items: str, target_url: str, summit_url: str
) -> None:
    config = _config(items, target_url)
    assert _run(config, summit_url).status == "success"
    run_sql(items, "ALTER TABLE public.items ALTER COLUMN qty TYPE text")
    with pytest.raises(StageFailure) as failure:
        _run(config, summit_url)
    assert "column 'qty' changed type: the source's text does not fit the target's integer" in str(failure.value)
    assert _changes(summit_url) == [("qty", "retyped", "text", "integer", "failed")]
    assert _types(target_url)["qty"] == "integer"


def test_freeze_is_the_default_for_targets_summit_did_not_create(
    items: str, target_url: str, summit_url: str
) -> None:
    run_sql(target_url, "CREATE SCHEMA dw; CREATE TABLE dw.items (id int PRIMARY KEY, name text, qty int)")
    config = _config(items, target_url)
    run_sql(items, "ALTER TABLE public.items ADD COLUMN note text")
    assert _run(config, summit_url).status == "success"
    assert set(_types(target_url)) == {"id", "name", "qty"}
    assert run_sql(target_url, "SELECT id, name, qty FROM dw.items") == [(1, "a", 1)]
    assert ("note", "added", "text", None, "ignored") in _changes(summit_url)


def test_fail_refuses_any_change(items: str, target_url: str, summit_url: str) -> None:
    config = _config(items, target_url, schemaChanges="fail")
    assert _run(config, summit_url).status == "success"
    run_sql(items, "ALTER TABLE public.items ADD COLUMN note text")
    with pytest.raises(StageFailure) as failure:
        _run(config, summit_url)
    assert "column 'note' is new in the source" in str(failure.value)
    assert _changes(summit_url) == [("note", "added", "text", None, "failed")]
    assert "note" not in _types(target_url)


@pytest.mark.parametrize(
    ("target", "source", "expected"),
    [
        ("integer", "bigint", True),
        ("bigint", "smallint", False),
        ("character varying(10)", "text", True),
        ("text", "character varying(5)", False),
        ("numeric(8,2)", "numeric(10,2)", True),
        ("numeric(8,2)", "numeric(8,3)", True),
        ("numeric(8,2)", "numeric(6,1)", False),
        ("numeric", "integer", False),
        ("real", "double precision", True),
        ("integer", "text", None),
        ("timestamp without time zone", "timestamp with time zone", None),
    ],
)
def test_widening_rules(target: str, source: str, expected: bool | None) -> None:
    assert widens(target, source) is expected
