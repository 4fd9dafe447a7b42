"""Conversion of a column to one of the typecast targets; what cannot convert becomes null.

Target types: int → int64, float → float64, decimal → decimal128(38, 9) (a decimal column
keeps its own precision), string, bool, date → date32, timestamp → timestamp[us, UTC]
(values without a zone are taken to be UTC), json → JSON text (validated).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.config import CastType
from summit_etl.transform.errors import TransformError
from summit_etl.transform.parsing import (
    DECIMAL_TYPE,
    Values,
    parse_bool,
    parse_date,
    parse_decimal,
    parse_float,
    parse_int,
    parse_json,
    parse_timestamp,
    to_decimal,
    to_int64,
)

_TIMESTAMP = pa.timestamp("us", "UTC")

_PARSERS: dict[str, Callable[[Values], Values]] = {
    "int": parse_int,
    "float": parse_float,
    "decimal": parse_decimal,
    "bool": parse_bool,
    "date": parse_date,
    "timestamp": parse_timestamp,
    "json": parse_json,
    "string": lambda values: values,
}


def is_text_type(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _from_typed(values: Values, target: CastType) -> Values | None:
    """The conversion of a non-text column, or None when there is no sensible one."""
    kind = values.type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if target == "string":
        return pc.cast(values, pa.string())
    if target == "int":
        if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            return pc.cast(values, pa.int64())
        return to_int64(values) if pa.types.is_floating(kind) or pa.types.is_decimal(kind) else None
    if target == "float":
        return pc.cast(values, pa.float64()) if numeric or pa.types.is_decimal(kind) else None
    if target == "decimal":
        if pa.types.is_decimal(kind):
            return values
        if pa.types.is_integer(kind):
            return pc.cast(values, DECIMAL_TYPE)
        return to_decimal(values) if pa.types.is_floating(kind) else None
    if target == "bool":
        if pa.types.is_boolean(kind):
            return values
        return pc.not_equal(values, 0) if numeric or pa.types.is_decimal(kind) else None
    if target == "date":
        if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
            return pc.cast(values, pa.date32())
        return None
    if target == "timestamp":
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            return pc.cast(values, _TIMESTAMP)
        if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
            # A naive timestamp becomes aware by reading it as UTC wall-clock time.
            return pc.cast(pc.cast(values, pa.timestamp("us")), _TIMESTAMP)
    return None


def convert(values: Values, target: CastType) -> Values:
    """`values` as `target`, with null where a value cannot be represented."""
    if is_text_type(values.type):
        return _PARSERS[target](values)
    converted = _from_typed(values, target)
    if converted is None:
        raise TransformError(f"a {values.type} column cannot be converted to {target}")
    return converted
