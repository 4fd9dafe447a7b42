"""Steps in the original system's nested shape beside the flat one, run in their `order`."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from summit_etl.config import PipelineConfig
from summit_etl.registry import ConfigError, parse_pipeline
from summit_etl.transform import build_transformer
from summit_etl_tests.config.test_config_pipeline import base

ORIGINAL = Path(__file__).parent / "original"
ENV = {"SOURCE_DATABASE_URL": "postgresql://h/src", "TARGET_DATABASE_URL": "postgresql://h/dw"}


def original(name: str) -> PipelineConfig:
    """An example of the original system's guide, sent as an API body would be."""
    path = ORIGINAL / name
    raw = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    return parse_pipeline(raw, name, environ=ENV)


def transformed(config: PipelineConfig, batch: pa.Table) -> list[dict[str, Any]]:
    steps = build_transformer(config.transformation.transformations, source_url=config.source.url)
    return [row for table in steps.stream([batch]) for row in table.to_pylist()]


def steps_of(config: PipelineConfig) -> list[tuple[str, str | None]]:
    return [(s.type, s.name) for s in config.transformation.transformations]


def test_map_normalize_typecast_as_the_guide_writes_them() -> None:
    config = original("customers-rename.json")
    assert steps_of(config) == [
        ("map", "rename"), ("normalize", "clean-contact-data"), ("typecast", "types")
    ]
    assert config.loading.target_url == "postgresql://h/dw"
    batch = pa.table({
        "cust_no": ["7"], "email_address": ["  Ann@Example.COM "], "country_code": [" de"],
        "created": ["2024-05-01"], "internal_notes": ["dropped by the map"],
    })
    [row] = transformed(config, batch)
    assert row == {"customer_id": 7, "email": "ann@example.com", "country": "DE",
                   "signed_up": date(2024, 5, 1)}


def test_filter_typecast_aggregate_run_in_their_order_not_the_written_one() -> None:
    config = original("daily-sales.yaml")
    assert [t for t, _ in steps_of(config)] == ["filter", "typecast", "aggregate"]
    batch = pa.table({
        "store_id": [1, 1, 2, 1], "sold_on": ["2024-05-01"] * 4,
        "amount": ["10.5", "4.5", "3", "100"],
        "status": ["completed", "completed", "completed", "cancelled"],
    })
    # The filter compares amount > 0 while it is still text; typecast runs only after it.
    with pytest.raises(ValueError, match=r"step 1 \(filter\)"):
        transformed(config, batch)
    numeric = batch.set_column(2, "amount", pa.array([10.5, 4.5, 3.0, 100.0]))
    assert transformed(config, numeric) == [
        {"store_id": 1, "sold_on": "2024-05-01", "amount": 15.0},
        {"store_id": 2, "sold_on": "2024-05-01", "amount": 3.0},
    ]


def test_flatten_explode_then_expand_then_map() -> None:
    config = original("order-lines.yaml")
    assert [t for t, _ in steps_of(config)] == ["flatten", "flatten", "map"]
    lines = json.dumps([{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}])
    out = transformed(config, pa.table({"id": [41], "lines": [lines]}))
    assert out == [
        {"order_id": 41, "sku": "A-1", "quantity": 2},
        {"order_id": 41, "sku": "B-7", "quantity": 1},
    ]


def test_flat_steps_keep_their_place_among_ordered_ones() -> None:
    steps = [
        {"type": "derive", "order": 2, "config": {"columns": {"b": "a * 2"}}},
        {"type": "filter", "expression": "a > 0"},
        {"type": "derive", "name": "first", "order": 1, "config": {"columns": {"a": "a + 1"}}},
        {"type": "deduplicate", "keys": ["a"]},
    ]
    config = parse_pipeline(base(transformation={"transformations": steps}), "x")
    kinds = [(s.type, s.name, s.order) for s in config.transformation.transformations]
    assert kinds == [("derive", "first", 1), ("filter", None, None), ("derive", None, 2),
                     ("deduplicate", None, None)]


def test_nested_settings_are_validated_like_flat_ones() -> None:
    nested = {"type": "map", "name": "rename", "config": {"fieldMapping": {"a": "x y"}}}
    with pytest.raises(ConfigError, match="map source field 'x y' is not a valid SQL identifier"):
        parse_pipeline(base(transformation={"transformations": [nested]}), "x")
    nested = {"type": "filter", "config": {"expresion": "a > 1"}}
    with pytest.raises(ConfigError, match=r"filter.expresion: unknown key"):
        parse_pipeline(base(transformation={"transformations": [nested]}), "x")
    both = {"type": "filter", "expression": "a > 1", "config": {"expression": "a > 2"}}
    with pytest.raises(ConfigError, match="sets expression both beside and inside 'config'"):
        parse_pipeline(base(transformation={"transformations": [both]}), "x")


def test_expressions_are_parsed_when_the_config_is_validated() -> None:
    steps = [{"type": "map", "fieldMapping": {"a": "id"}}, {"type": "filter", "expression": "a >"}]
    with pytest.raises(ConfigError) as info:
        parse_pipeline(base(transformation={"transformations": steps}), "x")
    assert "transformations.1.filter.expression" in str(info.value)
    assert "the expression 'a >' ends unexpectedly" in str(info.value)
    derive = [{"type": "derive", "columns": {"x": "open('/etc/passwd')"}}]
    with pytest.raises(ConfigError, match=r"derive.columns.x: .*unknown function 'open'"):
        parse_pipeline(base(transformation={"transformations": derive}), "x")
