"""Transformation steps that cannot handle a column's type are refused at creation,
naming the column; steps that can are let through."""

from __future__ import annotations

from typing import Any

import pytest

from summit_etl.registry import parse_pipeline
from summit_etl.schema.transform_types import (
    TransformTypeError,
    check_transformations,
    creation_problems,
)
from summit_etl_tests.types.wide import create_wide


def _config(source_url: str, steps: list[dict[str, Any]]) -> Any:
    return parse_pipeline(
        {
            "id": "wide",
            "name": "Wide",
            "source": {"url": source_url, "table": "public.wide"},
            "transformation": {"transformations": steps},
            "loading": {"strategy": "bulk", "targetTable": "dw.wide"},
        },
        "test",
    )


def test_steps_that_cannot_handle_a_type_are_refused_naming_the_column(source_url: str) -> None:
    create_wide(source_url, rows=False)
    steps = [
        {"type": "typecast", "typeMapping": {"iv": "int", "en": "string", "i8": "float"}},
        {"type": "normalize", "fields": {"ip": ["lower"], "tx": ["trim"]}},
        {"type": "aggregate", "groupBy": ["r"], "aggregations": {"mo": "sum", "comp": "count"}},
        {"type": "flatten", "field": "comp"},
    ]
    with pytest.raises(TransformTypeError) as refused:
        check_transformations(_config(source_url, steps))
    assert refused.value.problems == [
        "transformation.transformations[0] (typecast): column 'iv' of type interval cannot be cast to int here",
        "transformation.transformations[1] (normalize): column 'ip' of type inet would be normalized as text, changing it",
        "transformation.transformations[2] (aggregate): column 'mo' of type money has no sum here",
        "transformation.transformations[3] (flatten): column 'comp' of type pair is neither an array nor JSON",
    ]


def test_steps_that_fit_the_types_pass(source_url: str) -> None:
    create_wide(source_url, rows=False)
    steps = [
        {"type": "flatten", "field": "ia"},
        {"type": "typecast", "typeMapping": {"n_ps": "float", "ts": "string"}},
        {"type": "deduplicate", "keys": ["ip"], "orderBy": "tstz"},
    ]
    check_transformations(_config(source_url, steps))


def test_the_create_path_refuses_only_what_it_could_check(source_url: str) -> None:
    create_wide(source_url, rows=False)
    bad = [{"type": "typecast", "typeMapping": {"ci": "int"}}]
    assert creation_problems(_config(source_url, bad)) == [
        "transformation.transformations[0] (typecast): column 'ci' of type cidr cannot be cast to int here"
    ]
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    assert creation_problems(_config(unreachable, bad)) == []
    assert creation_problems(_config(source_url, [])) == []
