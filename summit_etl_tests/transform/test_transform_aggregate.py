"""aggregate: partial aggregates combined across batches, emitted once at the end."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest

from summit_etl.transform import TransformError
from summit_etl.transform import aggregate as aggregate_module
from summit_etl_tests.transform.transform_support import rows, run, transformer

PRICE = pa.decimal128(10, 2)
BATCHES = [
    pa.table(
        {
            "region": ["n", "s", "n"],
            "amount": pa.array([1, 2, 3], pa.int32()),
            "price": pa.array([Decimal("1.00"), Decimal("2.00"), None], PRICE),
            "qty": [1, None, 3],
            "score": [1, 2, 3],
            "day": [date(2024, 1, 5), date(2024, 1, 1), date(2024, 1, 3)],
        }
    ),
    pa.table(
        {
            "region": ["s", "e"],
            "amount": pa.array([4, 5], pa.int32()),
            "price": pa.array([Decimal("3.00"), Decimal("0.10")], PRICE),
            "qty": pa.array([None, None], pa.int64()),
            "score": [4, None],
            "day": [date(2023, 12, 31), date(2024, 2, 1)],
        }
    ),
    pa.table(
        {
            "region": ["n"],
            "amount": pa.array([6], pa.int32()),
            "price": pa.array([Decimal("2.00")], PRICE),
            "qty": [1],
            "score": pa.array([None], pa.int64()),
            "day": [date(2024, 1, 1)],
        }
    ),
]
STEP = {
    "type": "aggregate",
    "groupBy": ["region"],
    "aggregations": {
        "amount": "sum",
        "price": "avg",
        "qty": "count",
        "score": "avg",
        "day": "min",
        "region_max": "max",
    },
}


@pytest.fixture(params=[1, 50_000], ids=["merge-every-batch", "merge-at-end"])
def merge_threshold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregate_module, "_MIN_MERGE_ROWS", request.param)


@pytest.mark.usefixtures("merge_threshold")
def test_aggregate_combines_partials_across_batches() -> None:
    batches = [b.append_column("region_max", b["amount"]) for b in BATCHES]
    steps = transformer(STEP)
    [out] = list(steps.stream(batches))
    assert out.schema == pa.schema(
        [
            ("region", pa.string()),
            ("amount", pa.int64()),
            ("price", pa.decimal128(38, 6)),
            ("qty", pa.int64()),
            ("score", pa.float64()),
            ("day", pa.date32()),
            ("region_max", pa.int32()),
        ]
    )
    # Groups in order of first appearance; avg is sum/count over all batches, not an
    # average of per-batch averages (n's score: (1 + 3) / 2, with batch 3's NULL skipped).
    assert out.to_pylist() == [
        {
            "region": "n",
            "amount": 10,
            "price": Decimal("1.500000"),
            "qty": 3,
            "score": 2.0,
            "day": date(2024, 1, 1),
            "region_max": 6,
        },
        {
            "region": "s",
            "amount": 6,
            "price": Decimal("2.500000"),
            "qty": 0,
            "score": 3.0,
            "day": date(2023, 12, 31),
            "region_max": 4,
        },
        {
            "region": "e",
            "amount": 5,
            "price": Decimal("0.100000"),
            "qty": 0,
            "score": None,
            "day": date(2024, 2, 1),
            "region_max": 5,
        },
    ]
    assert (steps.rows_in, steps.rows_out) == (6, 3)


def test_aggregate_by_composite_key_with_nulls_feeds_later_steps() -> None:
    batches = [
        pa.table({"a": [1, 1, None], "b": ["x", "y", "x"], "v": [1.0, 2.0, 4.0]}),
        pa.table({"a": [None, 1], "b": ["x", "x"], "v": [8.0, 16.0]}),
    ]
    steps = [
        {"type": "aggregate", "groupBy": ["a", "b"], "aggregations": {"v": "sum"}},
        {"type": "filter", "expression": "v > 2"},
        {"type": "derive", "columns": {"half": "v / 2"}},
    ]
    assert rows(run(steps, *batches)) == [
        {"a": 1, "b": "x", "v": 17.0, "half": 8.5},
        {"a": None, "b": "x", "v": 12.0, "half": 6.0},
    ]


def test_aggregate_of_an_empty_stream_emits_nothing() -> None:
    assert run([STEP]) == []
    assert run([STEP], BATCHES[0].slice(0, 0)) == []


def test_aggregate_spec_errors() -> None:
    overlap = {"type": "aggregate", "groupBy": ["region"], "aggregations": {"region": "count"}}
    with pytest.raises(
        TransformError,
        match=re.escape(
            "Transformation step 1 (aggregate): region cannot be both a group key and aggregated."
        ),
    ):
        transformer(overlap)
    missing = {"type": "aggregate", "groupBy": ["region"], "aggregations": {"nope": "sum"}}
    with pytest.raises(TransformError, match="aggregated field 'nope' is not in the batch"):
        run([missing], BATCHES[0])
