"""Column references checked before a pipeline is stored: through the steps, against the
source's real columns, and skipped (never failed) when the source does not answer."""

from __future__ import annotations

from typing import Any

import pytest

from summit_etl.config import PipelineConfig
from summit_etl.registry import parse_pipeline
from summit_etl.transform.references import check_against_source, check_steps, source_columns
from summit_etl_tests.support import run_sql


def pipeline(url: str, *steps: dict[str, Any], **source: str) -> PipelineConfig:
    raw = {
        "id": "p", "name": "P",
        "source": {"url": url, **(source or {"table": "shop.orders"})},
        "transformation": {"transformations": list(steps)},
        "loading": {"strategy": "bulk", "targetTable": "dw.orders"},
    }
    return parse_pipeline(raw, "request body")


def problems(columns: list[str], *steps: dict[str, Any]) -> list[str]:
    specs = pipeline("postgresql://unused", *steps).transformation.transformations
    return check_steps(specs, columns)


COLUMNS = ["id", "status", "amount"]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"type": "filter", "expression": "stat != 'test'"}],
         "transformation step 1 (filter): column(s) 'stat' will not be in its rows "
         "(they have: id, status, amount)"),
        ([{"type": "map", "fieldMapping": {"order_id": "id"}},
          {"type": "derive", "columns": {"vat": "amount * 0.19"}}],
         "transformation step 2 (derive): column(s) 'amount' will not be in its rows "
         "(they have: order_id)"),
        ([{"type": "aggregate", "groupBy": ["status"], "aggregations": {"amount": "sum"}},
          {"type": "deduplicate", "keys": ["id"]}],
         "transformation step 2 (deduplicate): column(s) 'id' will not be in its rows "
         "(they have: status, amount)"),
        ([{"type": "typecast", "typeMapping": {"amount": "float", "qty": "int"}}],
         "transformation step 1 (typecast): column(s) 'qty'"),
    ],
)
def test_a_step_reading_a_missing_column_is_named(steps: list[dict], expected: str) -> None:
    [problem] = problems(COLUMNS, *steps)
    assert problem.startswith(expected)


def test_columns_are_followed_through_renames_and_derivations() -> None:
    assert problems(
        COLUMNS,
        {"type": "map", "fieldMapping": {"order_id": "id"}, "includeUnmapped": True},
        {"type": "derive", "columns": {"net": "amount / 1.19", "tax": "amount - net"}},
        {"type": "filter", "expression": "status != 'test' AND order_id > 0 AND tax >= 0"},
        {"type": "normalize", "fields": {"status": ["trim"]}},
        {"type": "join", "table": "shop.tiers", "on": ["order_id"], "columns": ["tier"]},
        {"type": "deduplicate", "keys": ["order_id"], "orderBy": "tier"},
    ) == []


def test_steps_after_one_whose_output_is_unknown_are_left_to_the_run() -> None:
    assert problems(
        COLUMNS,
        {"type": "join", "table": "shop.tiers", "on": ["id"]},
        {"type": "filter", "expression": "tier = 'gold'"},
    ) == []


def test_against_a_real_source_table_and_query(source_url: str) -> None:
    step = {"type": "filter", "expression": "state = 'paid'"}
    # No table yet: the source does not answer for it, so the create may proceed.
    assert source_columns(pipeline(source_url, step).source) is None
    assert check_against_source(pipeline(source_url, step)) == []
    run_sql(source_url, "CREATE SCHEMA shop; "
            "CREATE TABLE shop.orders (id int, status text, amount numeric)")
    [problem] = check_against_source(pipeline(source_url, step))
    assert "step 1 (filter): column(s) 'state'" in problem
    assert "(they have: id, status, amount)" in problem
    assert check_against_source(pipeline(
        source_url, step, query="SELECT id, status AS state FROM shop.orders"
    )) == []


def test_a_source_that_does_not_answer_lets_the_create_proceed() -> None:
    # Port 1 on loopback refuses at once; the missing column is left to the first run.
    silent = pipeline("postgresql://127.0.0.1:1/none", {"type": "filter", "expression": "x > 1"})
    assert check_against_source(silent) == []


def test_probing_the_source_reads_its_columns_without_running_the_query(
    source_url: str,
) -> None:
    run_sql(source_url, "CREATE TABLE log (n int); CREATE FUNCTION bump() RETURNS int "
            "LANGUAGE sql AS 'INSERT INTO log VALUES (1) RETURNING n'")
    config = pipeline(source_url, {"type": "filter", "expression": "n > 0"},
                      query="SELECT bump() AS n")
    assert source_columns(config.source) == ["n"]
    assert run_sql(source_url, "SELECT count(*) FROM log") == [(0,)]
