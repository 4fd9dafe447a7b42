"""map, typecast, normalize and derive."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from summit_etl.transform import TransformError
from summit_etl_tests.transform.transform_support import run

ORDERS = pa.table(
    {
        "order_id": pa.array([1, 2], pa.int32()),
        "amount": [9.5, 20.0],
        "status": ["new", "paid"],
    }
)


# --- map -------------------------------------------------------------------------------


def test_map_selects_and_renames_in_mapping_order() -> None:
    step = {"type": "map", "fieldMapping": {"total": "amount", "id": "order_id"}}
    [out] = run([step], ORDERS)
    assert out.schema == pa.schema([("total", pa.float64()), ("id", pa.int32())])
    assert out.to_pydict() == {"total": [9.5, 20.0], "id": [1, 2]}


def test_map_include_unmapped_keeps_the_rest_and_field_metadata() -> None:
    batch = ORDERS.cast(
        pa.schema(
            [
                pa.field("order_id", pa.int32(), metadata={"POSTGRESQL:type": "int4"}),
                ("amount", pa.float64()),
                ("status", pa.string()),
            ]
        )
    )
    step = {"type": "map", "fieldMapping": {"id": "order_id"}, "includeUnmapped": True}
    [out] = run([step], batch)
    assert out.column_names == ["id", "amount", "status"]
    assert out.schema.field("id").metadata == {b"POSTGRESQL:type": b"int4"}
    assert out["id"].to_pylist() == [1, 2]


def test_map_unknown_source_and_collisions_are_errors() -> None:
    with pytest.raises(
        TransformError,
        match=re.escape(
            "Transformation step 1 (map): map source field 'nope' is not in the batch (its "
            "columns: order_id, amount, status)."
        ),
    ):
        run([{"type": "map", "fieldMapping": {"x": "nope"}}], ORDERS)
    clash = {"type": "map", "fieldMapping": {"status": "amount"}, "includeUnmapped": True}
    with pytest.raises(TransformError, match="map target 'status' would duplicate"):
        run([clash], ORDERS)


# --- typecast --------------------------------------------------------------------------

TEXT = pa.table(
    {
        "i": [" 42", "-7", None],
        "f": ["1.5", "1e3", ".25"],
        "d": ["12.345", "-0.1", "7"],
        "b": ["yes", "FALSE", "0"],
        "day": ["2024-02-29", "2024/03/01", "2024-01-02T10:00:00"],
        "ts": ["2024-01-02 03:04:05.123456", "2024-01-02T03:04:05+02:00", "2024-01-02"],
        "j": ['{"a": 1}', "[1, 2]", "null"],
        "n": pa.array([1, 0, None], pa.int32()),
    }
)


def test_typecast_text_to_every_type() -> None:
    step = {
        "type": "typecast",
        "typeMapping": {
            "i": "int",
            "f": "float",
            "d": "decimal",
            "b": "bool",
            "day": "date",
            "ts": "timestamp",
            "j": "json",
            "n": "string",
        },
    }
    [out] = run([step], TEXT)
    assert out.schema == pa.schema(
        [
            ("i", pa.int64()),
            ("f", pa.float64()),
            ("d", pa.decimal128(38, 9)),
            ("b", pa.bool_()),
            ("day", pa.date32()),
            ("ts", pa.timestamp("us", "UTC")),
            ("j", pa.string()),
            ("n", pa.string()),
        ]
    )
    assert out.to_pydict() == {
        "i": [42, -7, None],
        "f": [1.5, 1000.0, 0.25],
        "d": [Decimal("12.345000000"), Decimal("-0.100000000"), Decimal("7.000000000")],
        "b": [True, False, False],
        "day": [date(2024, 2, 29), date(2024, 3, 1), date(2024, 1, 2)],
        "ts": [
            datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
            datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC),
            datetime(2024, 1, 2, tzinfo=UTC),
        ],
        "j": ['{"a": 1}', "[1, 2]", "null"],
        "n": ["1", "0", None],
    }


def test_typecast_between_typed_columns() -> None:
    batch = pa.table(
        {
            "f": [2.5, -2.5, 3.0],
            "dec": pa.array([Decimal("1.50"), None, Decimal("-0.49")], pa.decimal128(5, 2)),
            "when": pa.array([datetime(2024, 5, 6, 23, 0)] * 3, pa.timestamp("us")),
        }
    )
    step = {
        "type": "typecast",
        "typeMapping": {"f": "int", "dec": "int", "when": "timestamp"},
    }
    [out] = run([step], batch)
    assert out.to_pydict() == {
        "f": [3, -3, 3],  # half away from zero, as PostgreSQL
        "dec": [2, None, 0],
        "when": [datetime(2024, 5, 6, 23, 0, tzinfo=UTC)] * 3,
    }


def test_typecast_fails_naming_the_column_and_a_bad_value() -> None:
    batch = pa.table({"qty": ["1", "abc", "", "4", "x"]})
    with pytest.raises(
        TransformError,
        match=re.escape(
            "Transformation step 1 (typecast): column 'qty' cannot be cast to int: 'abc' is "
            "not a valid int (3 bad value(s) in this batch; onError: null would turn them "
            "into nulls)."
        ),
    ):
        run([{"type": "typecast", "typeMapping": {"qty": "int"}}], batch)


@pytest.mark.parametrize(
    ("target", "values", "expected"),
    [
        ("int", ["1", "abc", "9223372036854775808", "1.5"], [1, None, None, None]),
        ("float", ["1.5", "one", "1,5", None], [1.5, None, None, None]),
        ("decimal", ["0.5", "5e3", "1" * 30, "-"], [Decimal("0.500000000"), None, None, None]),
        ("bool", ["t", "maybe", "off", ""], [True, None, False, None]),
        (
            "date",
            ["2024-02-30", "2023-02-28", "tomorrow", "2024-13-01"],
            [None, date(2023, 2, 28), None, None],
        ),
        ("json", ['{"a": 1}', "{bad", "'single'", "42"], ['{"a": 1}', None, None, "42"]),
    ],
)
def test_typecast_on_error_null_turns_bad_values_into_nulls(
    target: str, values: list[str | None], expected: list[object]
) -> None:
    step = {"type": "typecast", "typeMapping": {"v": target}, "onError": "null"}
    [out] = run([step], pa.table({"v": values}))
    assert out["v"].to_pylist() == expected


def test_typecast_of_an_unconvertible_type_fails_even_with_on_error_null() -> None:
    step = {"type": "typecast", "typeMapping": {"day": "int"}, "onError": "null"}
    with pytest.raises(
        TransformError,
        match="column 'day' cannot be cast: a date32.day. column cannot be converted to int",
    ):
        run([step], pa.table({"day": [date(2024, 1, 1)]}))


# --- normalize -------------------------------------------------------------------------


def test_normalize_applies_operations_in_order() -> None:
    batch = pa.table(
        {
            "email": ["  Ann@Example.COM ", "   ", None],
            "code": [" ab ", "cd", ""],
            "signup": [" 2024/01/31 ", "31.01.2024", "2024-02-01 08:00"],
            "seen": ["2024-01-31T10:00:00Z", "2024-01-31 12:30", "never"],
            "price": ["$ 1,234.50", "n/a", "-3"],
        }
    )
    step = {
        "type": "normalize",
        "fields": {
            "email": ["trim", "lower", "empty_to_null"],
            "code": ["empty_to_null", "trim", "upper"],
            "signup": ["date"],
            "seen": ["timestamp"],
            "price": ["number"],
        },
    }
    [out] = run([step], batch)
    assert out.to_pydict() == {
        "email": ["ann@example.com", None, None],
        "code": ["AB", "CD", None],
        "signup": [date(2024, 1, 31), None, date(2024, 2, 1)],
        "seen": [
            datetime(2024, 1, 31, 10, tzinfo=UTC),
            datetime(2024, 1, 31, 12, 30, tzinfo=UTC),
            None,
        ],
        "price": [1234.5, None, -3.0],
    }


def test_normalize_text_operation_on_a_number_column_is_an_error() -> None:
    with pytest.raises(
        TransformError,
        match=re.escape("'trim' on column 'n' failed: it applies to text, and the column is int64"),
    ):
        run([{"type": "normalize", "fields": {"n": ["trim"]}}], pa.table({"n": [1]}))


def test_normalize_number_of_a_numeric_column_is_float() -> None:
    batch = pa.table({"n": pa.array([Decimal("1.25")], pa.decimal128(4, 2))})
    [out] = run([{"type": "normalize", "fields": {"n": ["number"]}}], batch)
    assert out.schema.field("n").type == pa.float64()
    assert out["n"].to_pylist() == [1.25]


# --- derive ----------------------------------------------------------------------------


def test_derive_adds_and_replaces_columns_in_order() -> None:
    step = {
        "type": "derive",
        "columns": {
            "net": "amount / 1.25",
            "label": "upper(status) + '#' + order_id",
            "amount": "round(net, 2)",
            "flag": "amount > 10 AND status <> 'new'",
            "one": "1",
        },
    }
    [out] = run([step], ORDERS)
    assert out.to_pydict() == {
        "order_id": [1, 2],
        "amount": [7.6, 16.0],
        "status": ["new", "paid"],
        "net": [7.6, 16.0],
        "label": ["NEW#1", "PAID#2"],
        "flag": [False, True],
        "one": [1, 1],
    }


def test_derive_runtime_failure_names_column_and_expression() -> None:
    step = {"type": "derive", "columns": {"x": "status * 2"}}
    with pytest.raises(
        TransformError,
        match=re.escape(
            "Transformation step 1 (derive): column 'x' = 'status * 2' cannot be computed"
        ),
    ):
        run([step], ORDERS)


def test_derive_keeps_decimal_arithmetic_exact() -> None:
    prices = pa.table({"amount": pa.array([Decimal("84.19"), None], pa.decimal128(12, 2))})
    step = {"type": "derive", "columns": {"gross": "amount * 1.19", "plus": "amount + 0.1"}}
    [out] = run([step], prices)
    assert pa.types.is_decimal(out.schema.field("gross").type)
    assert out.column("gross").to_pylist() == [Decimal("100.1861"), None]
    assert out.column("plus").to_pylist() == [Decimal("84.29"), None]
