"""The expression language: results, SQL spellings, NULL semantics, and refusals."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from summit_etl.transform import TransformError, parse_expression

BATCH = pa.table(
    {
        "status": ["ok", "test", None, "ok"],
        "amount": pa.array([10, 5, 3, -1], pa.int32()),
        "price": [1.5, 2.0, None, 3.0],
        "credit": pa.array(
            [Decimal("10.50"), Decimal("0.25"), None, Decimal("-1.00")], pa.decimal128(10, 2)
        ),
        "day": pa.array([date(2024, 1, 1), date(2024, 6, 1), None, date(2023, 1, 1)]),
    }
)


def evaluate(text: str) -> list[Any]:
    return parse_expression(text).evaluate(BATCH).to_pylist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status != 'test' and amount > 0", [True, False, None, False]),
        ("status = 'ok' AND amount <> 10", [False, False, None, True]),
        ("status == 'ok' Or amount = 5", [True, True, None, True]),
        ("NOT amount > 5", [False, True, True, True]),
        ("status IS NULL", [False, False, True, False]),
        ("status is not null", [True, True, False, True]),
        ("amount IN (5, 10)", [True, True, False, False]),
        ("amount NOT IN (5, -1)", [True, False, True, False]),
        ("status in ('ok')", [True, False, None, True]),
        ("status NOT IN ('ok', 'test')", [False, False, None, False]),
        ("0 < amount <= 5", [False, True, True, False]),
        ("day > '2024-01-01'", [False, True, None, False]),
        ("credit > 0.3", [True, False, None, False]),
        ("price = NULL", [None, None, None, None]),
        ("TRUE", [True, True, True, True]),
    ],
)
def test_conditions_follow_sql_semantics(text: str, expected: list[Any]) -> None:
    assert evaluate(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("amount + 1", [11, 6, 4, 0]),
        ("-amount * 2 - 1", [-21, -11, -7, 1]),
        ("amount / 4", [2.5, 1.25, 0.75, -0.25]),
        ("amount / (amount - 5)", [2.0, None, -1.5, 1 / 6]),
        ("amount % 3", [1, 2, 0, -1]),
        ("(amount + 2) * 3", [36, 21, 15, 3]),
        ("status + '-' + amount", ["ok-10", "test-5", None, "ok--1"]),
        ("concat(status, '/', amount)", ["ok/10", "test/5", "/3", "ok/-1"]),
        ("coalesce(price, 0)", [1.5, 2.0, 0.0, 3.0]),
        ("coalesce(status, 'none')", ["ok", "test", "none", "ok"]),
        ("round(price * 1.25, 1)", [1.9, 2.5, None, 3.8]),
        ("round(2.5)", [3.0, 3.0, 3.0, 3.0]),
        ("UPPER(status)", ["OK", "TEST", None, "OK"]),
        ("lower('ABC')", ["abc"] * 4),
        ("trim('  x ')", ["x"] * 4),
        ("length(status)", [2, 4, None, 2]),
        ("abs(amount)", [10, 5, 3, 1]),
        ("credit * 2", [Decimal("21.00"), Decimal("0.50"), None, Decimal("-2.00")]),
        ("year(day) * 100 + month(day)", [202401, 202406, None, 202301]),
        ("day(day)", [1, 1, None, 1]),
        ("'it''s'", ["it's"] * 4),
        ('"double"', ["double"] * 4),
        ("now() > day", [True, True, None, True]),
    ],
)
def test_arithmetic_and_functions(text: str, expected: list[Any]) -> None:
    assert evaluate(text) == expected


def test_unknown_column_is_named_with_the_columns_there_are() -> None:
    expression = parse_expression("missing > 1")
    with pytest.raises(
        TransformError,
        match=r"^column 'missing' is not in the batch \(its columns: status, amount, ",
    ):
        expression.evaluate(BATCH)


def test_a_text_literal_that_is_no_date_is_reported() -> None:
    with pytest.raises(TransformError, match="'soon' is not a valid date32"):
        evaluate("day > 'soon'")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('x')", "calling \"__import__('os').system\" is not allowed"),
        ("().__class__", "attribute access '.__class__' in '().__class__' is not allowed"),
        ("().__class__.__bases__[0]", "subscripts such as '().__class__.__bases__[0]'"),
        ("open('f')", "unknown function 'open' (available: abs, coalesce, concat, day"),
        ("eval('1')", "unknown function 'eval'"),
        ("__builtins__", "the name '__builtins__' is not allowed"),
        ("amount.real", "attribute access '.real' in 'amount.real' is not allowed"),
        ("lambda: 1", "the expression 'lambda: 1' cannot be parsed near ':'"),
        ("[c for c in status]", "the expression '[c for c in status]' cannot be parsed"),
        ("amount if amount else 0", "cannot be parsed near 'if'"),
        ("amount ** 2", "the operator in 'amount ** 2' is not allowed"),
        ("amount // 2", "the operator in 'amount // 2' is not allowed"),
        ("~amount", "the operator in '~amount' is not allowed"),
        ("amount; DROP TABLE x", "unexpected character ';' at position 6"),
        ("{'a': 1}", "\"{'a': 1}\" is not allowed in an expression"),
        ("(1, 2)", "a list such as '(1, 2)' is only allowed after IN"),
        ("amount IN (price)", "IN takes a list of literals, not 'price'"),
        ("amount IS 1", "IS takes only NULL, not '1'"),
        ("lower(*status)", "lower() takes plain arguments only"),
        ("lower(status, 'x')", "lower() takes 1 argument(s), not 2"),
        ("amount >", "the expression 'amount >' ends unexpectedly"),
        ("99999999999999999999999", "the literal '99999999999999999999999' is out of range"),
        ("'unterminated", 'unexpected character "\'" at position 0'),
    ],
)
def test_anything_outside_the_grammar_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(TransformError, match=re.escape(message)):
        parse_expression(text)


def test_pathological_nesting_is_refused_not_crashing() -> None:
    with pytest.raises(TransformError, match="cannot be parsed|nested too deeply"):
        parse_expression("(" * 3000 + "1" + ")" * 3000)
    with pytest.raises(TransformError, match="longer than 10000 characters"):
        parse_expression("1 + " * 5000 + "1")


def test_python_keywords_are_plain_column_names() -> None:
    batch = pa.table({"class": ["a", "b"], "from": [1, 2]})
    assert parse_expression("class = 'b' or from = 1").evaluate(batch).to_pylist() == [True, True]


def test_now_compares_with_timestamps_with_and_without_time_zone() -> None:
    past, future = datetime(2000, 1, 1), datetime(2999, 1, 1)
    batch = pa.table(
        {
            "naive": pa.array([past, future], pa.timestamp("us")),
            "aware": pa.array([past, future], pa.timestamp("us", "UTC")),
        }
    )
    expression = parse_expression("naive < now() AND aware < now()")
    assert expression.evaluate(batch).to_pylist() == [True, False]
