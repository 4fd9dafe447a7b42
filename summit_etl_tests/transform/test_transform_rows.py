"""filter, flatten and deduplicate."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from summit_etl.transform import TransformError
from summit_etl.transform import rows as rows_module
from summit_etl_tests.transform.transform_support import rows, run, transformer

# --- filter ----------------------------------------------------------------------------


def test_filter_drops_false_and_null_and_counts_what_it_removed() -> None:
    first = pa.table({"id": [1, 2, 3], "status": ["ok", "test", None], "amount": [5, 1, 2]})
    second = pa.table({"id": [4, 5], "status": ["ok", "ok"], "amount": [0, 9]})
    steps = transformer({"type": "filter", "expression": "status != 'test' and amount > 0"})
    out = list(steps.stream([first, second]))
    assert rows(out) == [
        {"id": 1, "status": "ok", "amount": 5},
        {"id": 5, "status": "ok", "amount": 9},
    ]
    assert (steps.rows_in, steps.rows_out, steps.rows_filtered) == (5, 2, 3)


def test_filter_that_keeps_nothing_yields_nothing() -> None:
    steps = transformer({"type": "filter", "expression": "amount > 100"})
    assert list(steps.stream([pa.table({"amount": [1, 2]})])) == []
    assert (steps.rows_in, steps.rows_out, steps.rows_filtered) == (2, 0, 2)


def test_filter_needs_a_condition() -> None:
    with pytest.raises(
        TransformError,
        match=re.escape(
            "Transformation step 1 (filter): the condition 'amount + 1' gives int64 values, "
            "not true/false."
        ),
    ):
        run([{"type": "filter", "expression": "amount + 1"}], pa.table({"amount": [1]}))


# --- flatten ---------------------------------------------------------------------------


def test_explode_a_list_column_keeps_empty_and_null_lists_as_a_null_row() -> None:
    batch = pa.table(
        {"id": [1, 2, 3, 4], "tags": pa.array([["a", "b"], [], None, ["c"]], pa.list_(pa.string()))}
    )
    out = run([{"type": "flatten", "field": "tags"}], batch)
    # Output is cut into batches no bigger than the largest input batch.
    assert [t.num_rows for t in out] == [4, 1]
    assert pa.concat_tables(out).to_pydict() == {
        "id": [1, 1, 2, 3, 4],
        "tags": ["a", "b", None, None, "c"],
    }


def test_explode_a_json_array_column() -> None:
    batch = pa.table({"items": ["[1, 2]", None, "[]", '[{"sku": "x"}, 3]'], "id": [1, 2, 3, 4]})
    out = pa.concat_tables(run([{"type": "flatten", "field": "items", "mode": "explode"}], batch))
    # Objects stay JSON text, and scalars mixed with them become text too.
    assert out.to_pydict() == {
        "items": ["1", "2", None, None, '{"sku": "x"}', "3"],
        "id": [1, 1, 2, 3, 4, 4],
    }
    ints = run([{"type": "flatten", "field": "items"}], batch.slice(0, 2))
    assert [t["items"].type for t in ints] == [pa.int64(), pa.int64()]
    assert rows(ints) == [{"items": 1, "id": 1}, {"items": 2, "id": 1}, {"items": None, "id": 2}]


def test_explode_rejects_what_is_not_a_json_array() -> None:
    with pytest.raises(
        TransformError,
        match=re.escape("column 'items' holds '{\"a\": 1}', which is not a JSON array"),
    ):
        run([{"type": "flatten", "field": "items"}], pa.table({"items": ['{"a": 1}']}))
    with pytest.raises(
        TransformError, match=re.escape("column 'items' holds '[1,', which is not JSON")
    ):
        run([{"type": "flatten", "field": "items"}], pa.table({"items": ["[1,"]}))


def test_expand_a_json_object_column_keeps_the_key_set_across_batches() -> None:
    first = pa.table(
        {
            "id": [1, 2],
            "attrs": ['{"color": "red", "size": 2}', '{"size": 3, "x y": {"k": 1}}'],
            "z": [0, 0],
        }
    )
    second = pa.table({"id": [3], "attrs": [None], "z": [1]})
    out = run([{"type": "flatten", "field": "attrs", "mode": "expand"}], first, second)
    assert [t.column_names for t in out] == [
        ["id", "attrs_color", "attrs_size", "attrs_x_y", "z"]
    ] * 2
    assert rows(out) == [
        {"id": 1, "attrs_color": "red", "attrs_size": 2, "attrs_x_y": None, "z": 0},
        {"id": 2, "attrs_color": None, "attrs_size": 3, "attrs_x_y": '{"k": 1}', "z": 0},
        {"id": 3, "attrs_color": None, "attrs_size": None, "attrs_x_y": None, "z": 1},
    ]
    assert out[1].schema == out[0].schema


def test_expand_a_struct_column() -> None:
    address = pa.array([{"city": "Oslo", "zip": "0150"}, None])
    [out] = run(
        [{"type": "flatten", "field": "address", "mode": "expand"}], pa.table({"address": address})
    )
    assert out.to_pydict() == {"address_city": ["Oslo", None], "address_zip": ["0150", None]}


def test_expand_refuses_to_overwrite_a_column() -> None:
    batch = pa.table({"a": ['{"b": 1}'], "a_b": [2]})
    with pytest.raises(TransformError, match="would create duplicate column\\(s\\) a_b"):
        run([{"type": "flatten", "field": "a", "mode": "expand"}], batch)


# --- deduplicate -----------------------------------------------------------------------


@pytest.fixture(params=[1, 50_000], ids=["merge-every-batch", "merge-at-end"])
def merge_threshold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "_MIN_MERGE_ROWS", request.param)


@pytest.mark.usefixtures("merge_threshold")
def test_deduplicate_keeps_the_greatest_order_by_across_batches() -> None:
    batches = [
        pa.table({"id": [1, 2, 1], "v": [10, 20, 30], "name": ["a", "b", "c"]}),
        pa.table({"id": [2, 3, 1], "v": [5, None, 30], "name": ["d", "e", "f"]}),
        pa.table({"id": [3, 2], "v": [None, 21], "name": ["g", "h"]}),
    ]
    step = {"type": "deduplicate", "keys": ["id"], "orderBy": "v"}
    steps = transformer(step)
    out = list(steps.stream(batches))
    # id 1: v 30 twice, the later one (f) wins; id 3: all NULL, the last seen (g) wins.
    assert rows(out) == [
        {"id": 1, "v": 30, "name": "f"},
        {"id": 3, "v": None, "name": "g"},
        {"id": 2, "v": 21, "name": "h"},
    ]
    assert (steps.rows_in, steps.rows_out, steps.rows_filtered) == (8, 3, 0)


@pytest.mark.usefixtures("merge_threshold")
def test_deduplicate_without_order_by_keeps_the_last_seen_per_composite_key() -> None:
    batches = [
        pa.table({"a": [1, 1, 2], "b": ["x", "y", "x"], "n": [1, 2, 3]}),
        pa.table({"a": [1, None, None], "b": ["x", "x", "x"], "n": [4, 5, 6]}),
    ]
    out = run([{"type": "deduplicate", "keys": ["a", "b"]}], *batches)
    assert rows(out) == [
        {"a": 1, "b": "y", "n": 2},
        {"a": 2, "b": "x", "n": 3},
        {"a": 1, "b": "x", "n": 4},
        {"a": None, "b": "x", "n": 6},
    ]
