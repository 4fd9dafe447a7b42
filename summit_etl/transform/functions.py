"""Operators and functions of the expression language, as pyarrow.compute calls.

Operands are Arrow arrays (columns and intermediate results) or scalars (literals).
Arithmetic is overflow-checked, so a bad value fails loudly instead of wrapping around.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.transform.errors import TransformError
from summit_etl.transform.parsing import parse_date, parse_timestamp

Value: TypeAlias = pa.Array | pa.ChunkedArray | pa.Scalar


def is_text(value: Value) -> bool:
    return pa.types.is_string(value.type) or pa.types.is_large_string(value.type)


def _fit(value: Value, other: pa.DataType) -> Value:
    """A literal made to fit the type it is compared or combined with.

    A float literal next to a decimal becomes an exact decimal; NULL takes the other
    side's type (Arrow has few kernels for the null type), a text
    literal next to a date or timestamp is read as one, as SQL does for
    `created_at > '2024-01-01'`, and a timestamp literal takes the column's time zone.
    """
    if not isinstance(value, pa.Scalar) or value.type == other:
        return value
    if pa.types.is_null(value.type):
        return pa.scalar(None, other)
    if pa.types.is_floating(value.type) and pa.types.is_decimal(other) and value.is_valid:
        # `amount * 1.19` on a numeric column stays exact, as SQL's numeric literals do;
        # repr() gives the literal's digits as written.
        number = value.as_py()
        if math.isfinite(number):
            return pa.scalar(Decimal(repr(number)))
    if pa.types.is_timestamp(value.type) and pa.types.is_timestamp(other):
        # now() against a column without time zone: naive timestamps are UTC here.
        return value.cast(other)
    if is_text(value) and (pa.types.is_date(other) or pa.types.is_timestamp(other)):
        text = pa.array([value.as_py()], pa.string())
        parsed = parse_date(text) if pa.types.is_date(other) else parse_timestamp(text)
        if not parsed[0].is_valid:
            raise TransformError(f"{value.as_py()!r} is not a valid {other} literal")
        return parsed[0].cast(other)
    return value


def align(left: Value, right: Value) -> tuple[Value, Value]:
    return _fit(left, right.type), _fit(right, left.type)


def _as_text(value: Value) -> Value:
    return value if is_text(value) else pc.cast(value, pa.string())


def _zero_to_null(value: Value) -> Value:
    """Division by zero gives NULL, as in most ETL engines, rather than failing the run."""
    return pc.if_else(pc.equal(value, 0), pa.scalar(None, value.type), value)


def add(left: Value, right: Value) -> Value:
    if is_text(left) or is_text(right):
        # `+` with text concatenates; NULL on either side gives NULL, like SQL's `||`.
        return pc.binary_join_element_wise(_as_text(left), _as_text(right), "")
    return pc.add_checked(*align(left, right))


def subtract(left: Value, right: Value) -> Value:
    return pc.subtract_checked(*align(left, right))


def multiply(left: Value, right: Value) -> Value:
    return pc.multiply_checked(*align(left, right))


def divide(left: Value, right: Value) -> Value:
    """True division: integers divide to float64 (7 / 2 is 3.5, not SQL's 3)."""
    left, right = align(left, right)
    if pa.types.is_integer(left.type) and pa.types.is_integer(right.type):
        left, right = pc.cast(left, pa.float64()), pc.cast(right, pa.float64())
    try:
        return pc.divide_checked(left, _zero_to_null(right))
    except pa.ArrowInvalid:
        if not (pa.types.is_decimal(left.type) or pa.types.is_decimal(right.type)):
            raise
        # Arrow widens decimal quotients and gives up past 38 digits; fall back to float.
        return pc.divide(pc.cast(left, pa.float64()), _zero_to_null(pc.cast(right, pa.float64())))


def remainder(left: Value, right: Value) -> Value:
    """SQL `%`: the sign follows the dividend (-7 % 3 is -1); x % 0 is NULL."""
    left, right = align(left, right)
    return pc.remainder_checked(left, _zero_to_null(right))


def negate(value: Value) -> Value:
    return pc.negate_checked(value)


def is_in(value: Value, options: pa.Array) -> Value:
    """SQL `IN`: NULL IN (...) is NULL, so a filter drops it whether negated or not."""
    if options.type != value.type and not pa.types.is_null(value.type):
        options = options.cast(value.type)
    found = pc.is_in(value, value_set=options)
    return pc.if_else(pc.is_null(value), pa.scalar(None, pa.bool_()), found)


def _coalesce(*args: Value) -> Value:
    arrays = [a for a in args if not isinstance(a, pa.Scalar)]
    target = arrays[0].type if arrays else args[0].type
    fitted = [_fit(a, target) for a in args]
    return pc.coalesce(*(a.cast(target) if isinstance(a, pa.Scalar) else a for a in fitted))


def _concat(*args: Value) -> Value:
    """SQL concat(): NULL arguments count as empty text."""
    return pc.binary_join_element_wise(
        *(_as_text(a) for a in args), "", null_handling="replace", null_replacement=""
    )


def _round(value: Value, digits: Value | None = None) -> Value:
    if digits is None:
        ndigits = 0
    elif isinstance(digits, pa.Scalar) and pa.types.is_integer(digits.type):
        ndigits = digits.as_py()
    else:
        raise TransformError("round()'s second argument must be an integer literal")
    # Half away from zero, as PostgreSQL rounds numeric values.
    return pc.round(value, ndigits=ndigits, round_mode="half_towards_infinity")


def _now() -> Value:
    return pa.scalar(datetime.now(UTC), pa.timestamp("us", "UTC"))


# name -> (fewest arguments, most arguments, implementation)
FUNCTIONS: dict[str, tuple[int, int, Callable[..., Value]]] = {
    "lower": (1, 1, pc.utf8_lower),
    "upper": (1, 1, pc.utf8_upper),
    "trim": (1, 1, pc.utf8_trim_whitespace),
    "length": (1, 1, pc.utf8_length),
    "coalesce": (1, 100, _coalesce),
    "concat": (1, 100, _concat),
    "abs": (1, 1, pc.abs_checked),
    "round": (1, 2, _round),
    "now": (0, 0, _now),
    "year": (1, 1, pc.year),
    "month": (1, 1, pc.month),
    "day": (1, 1, pc.day),
}
