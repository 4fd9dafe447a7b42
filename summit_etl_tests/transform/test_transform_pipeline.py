"""The Transformer: validation up front, chaining, counting, empty input, custom steps."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from summit_etl.transform import TransformError
from summit_etl_tests.transform.transform_support import rows, run, transformer

BATCH = pa.table({"id": [1, 2, 3], "price": [2.0, 3.0, 4.0], "qty": [1, 0, 5]})
CUSTOM = "summit_etl_tests.transform.transform_support"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [{"type": "custom", "function": "summit_etl_tests.nowhere:f"}],
            "Transformation step 1 (custom): the module of 'summit_etl_tests.nowhere:f' cannot "
            "be imported: No module named 'summit_etl_tests.nowhere'.",
        ),
        (
            [{"type": "custom", "function": f"{CUSTOM}:NOT_CALLABLE"}],
            f"Transformation step 1 (custom): '{CUSTOM}:NOT_CALLABLE' is not a function.",
        ),
    ],
)
def test_bad_specs_fail_at_build_time_naming_the_step(steps: list[dict], message: str) -> None:
    with pytest.raises(TransformError, match=re.escape(message)):
        transformer(*steps)


def test_transform_error_is_a_value_error() -> None:
    assert issubclass(TransformError, ValueError)


def test_no_steps_passes_batches_through_and_skips_empty_ones() -> None:
    steps = transformer()
    out = list(steps.stream([BATCH.slice(0, 0), BATCH, BATCH.slice(0, 0)]))
    assert out == [BATCH]
    assert (steps.rows_in, steps.rows_out, steps.rows_filtered) == (3, 3, 0)


def test_an_empty_stream_yields_nothing() -> None:
    steps = transformer(
        {"type": "deduplicate", "keys": ["id"]}, {"type": "filter", "expression": "id > 0"}
    )
    assert list(steps.stream([])) == []
    assert (steps.rows_in, steps.rows_out, steps.rows_filtered) == (0, 0, 0)


def test_steps_run_in_order_and_barrier_output_flows_through_later_steps() -> None:
    later = pa.table({"id": [3, 4], "price": [9.0, 1.0], "qty": [1, 1]})
    steps = transformer(
        {"type": "filter", "expression": "qty > 0"},
        {"type": "deduplicate", "keys": ["id"]},
        {"type": "derive", "columns": {"total": "price * qty"}},
        {"type": "filter", "expression": "total >= 2"},
        {"type": "map", "fieldMapping": {"order": "id", "total": "total"}},
    )
    out = list(steps.stream([BATCH, later]))
    # Barrier output is cut to the largest input batch (3 rows).
    assert [t.num_rows for t in out] == [2]
    assert rows(out) == [{"order": 1, "total": 2.0}, {"order": 3, "total": 9.0}]
    # Filtered: id 2 (qty 0) by the first filter, id 4 (total 1) by the second.
    assert (steps.rows_in, steps.rows_out, steps.rows_filtered) == (5, 2, 2)


def test_barrier_output_is_cut_to_the_largest_input_batch() -> None:
    batches = [pa.table({"id": [i, i + 1]}) for i in range(0, 10, 2)]
    out = run([{"type": "deduplicate", "keys": ["id"]}], *batches)
    assert [t.num_rows for t in out] == [2, 2, 2, 2, 2]
    assert rows(out) == [{"id": i} for i in range(10)]


def test_custom_function_gets_and_returns_a_dataframe() -> None:
    out = run([{"type": "custom", "function": f"{CUSTOM}:add_total"}], BATCH)
    assert rows(out) == [
        {"id": 1, "price": 2.0, "qty": 1, "total": 2.0},
        {"id": 2, "price": 3.0, "qty": 0, "total": 0.0},
        {"id": 3, "price": 4.0, "qty": 5, "total": 20.0},
    ]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("not_a_frame", f"the function '{CUSTOM}:not_a_frame' returned list, not a DataFrame."),
        ("fail_loudly", f"the function '{CUSTOM}:fail_loudly' raised RuntimeError: boom."),
    ],
)
def test_custom_function_failures_name_the_function(function: str, message: str) -> None:
    with pytest.raises(
        TransformError, match=re.escape(f"Transformation step 1 (custom): {message}")
    ):
        run([{"type": "custom", "function": f"{CUSTOM}:{function}"}], BATCH)
