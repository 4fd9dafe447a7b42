"""Vectorised parsing of text into typed Arrow arrays: a value that does not parse is null.

Shared by typecast (which then decides whether a new null is an error) and normalize
(which keeps it). Text is validated with a regular expression before Arrow casts it,
because an Arrow cast fails the whole array on the first bad value.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

Values: TypeAlias = pa.Array | pa.ChunkedArray

_INTEGER = r"^[+-]?\d{1,38}$"
_FLOAT = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
# At most 29 integer digits: what decimal128(38, 9) holds.
_DECIMAL = r"^[+-]?(?:\d{1,29}(?:\.\d*)?|\.\d+)$"
_TRUE = pa.array(["true", "t", "yes", "y", "on", "1"])
_FALSE = pa.array(["false", "f", "no", "n", "off", "0"])
# ISO 8601 (or `YYYY/MM/DD`): a date, optionally a time with fraction, optionally a zone.
_TIMESTAMP = (
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?P<fraction>\.\d{1,9})?)?"
    r" ?(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?$"
)
# Shapes Arrow's ISO 8601 cast reads exactly as the general path does (see _arrow_cast).
_ISO_TIME = r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
_ISO_NAIVE = rf"^\d{{4}}-\d{{2}}-\d{{2}}{_ISO_TIME}?$"
_ISO_ZONED = rf"^\d{{4}}-\d{{2}}-\d{{2}}{_ISO_TIME}(?:Z|[+-]\d{{2}}(?::?\d{{2}})?)$"
_UTC = pa.timestamp("us", "UTC")
DECIMAL_TYPE = pa.decimal128(38, 9)
_DECIMAL_LIMIT = Decimal(10) ** 29
_MICROS_PER_MINUTE = 60_000_000


def keep(values: Values, valid: Values) -> Values:
    """`values` where `valid` holds, else null."""
    return pc.if_else(valid, values, pa.scalar(None, values.type))


def _matching(values: Values, pattern: str) -> Values:
    text = pc.utf8_trim_whitespace(values)
    return keep(text, pc.match_substring_regex(text, pattern))


def to_int64(values: Values) -> Values:
    """Floats and decimals rounded half away from zero (as PostgreSQL casts); NaN and
    values outside int64 become null."""
    rounded = pc.round(values, round_mode="half_towards_infinity")
    if pa.types.is_decimal(values.type):
        low, high = pa.scalar(Decimal(-(2**63))), pa.scalar(Decimal(2**63))
    else:
        low, high = pa.scalar(-(2.0**63)), pa.scalar(2.0**63)
    fits = pc.and_(pc.greater_equal(rounded, low), pc.less(rounded, high))
    return pc.cast(keep(rounded, fits), pa.int64())


def to_decimal(values: Values) -> Values:
    """decimal128(38, 9), rounding extra digits; NaN, infinity and overflow become null."""
    if pa.types.is_floating(values.type):
        finite = pc.less(pc.abs(values), float(_DECIMAL_LIMIT))  # false for NaN and inf
        return pc.cast(keep(values, finite), DECIMAL_TYPE)
    rounded = pc.round(values, ndigits=9, round_mode="half_towards_infinity")
    limit = pa.scalar(_DECIMAL_LIMIT, pa.decimal256(30, 0))
    return pc.cast(keep(rounded, pc.less(pc.abs(rounded), limit)), DECIMAL_TYPE)


def parse_int(values: Values) -> Values:
    return to_int64(pc.cast(_matching(values, _INTEGER), pa.decimal128(38, 0)))


def parse_float(values: Values) -> Values:
    return pc.cast(_matching(values, _FLOAT), pa.float64())


def parse_number(values: Values) -> Values:
    """Lenient float parsing for dirty text: thousands separators, blanks and currency
    signs are dropped first ('$ 1,234.50' is 1234.5)."""
    return parse_float(pc.replace_substring_regex(values, r"[\s,_$€£¥]", ""))


def parse_decimal(values: Values) -> Values:
    text = _matching(values, _DECIMAL)
    # decimal256(76, 18) takes any 29-digit number once its fraction is cut to 18
    # digits; digits past the 18th cannot change the rounding to 9.
    text = pc.replace_substring_regex(text, r"(\.\d{18})\d+$", r"\1")
    return to_decimal(pc.cast(text, pa.decimal256(76, 18)))


def parse_bool(values: Values) -> Values:
    """The spellings PostgreSQL accepts for boolean: true/false, t/f, yes/no, on/off, 1/0."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    false_or_null = pc.if_else(pc.is_in(text, value_set=_FALSE), False, pa.scalar(None, pa.bool_()))
    return pc.if_else(pc.is_in(text, value_set=_TRUE), True, false_or_null)


def _timestamp_parts(text: Values) -> Values:
    """Named parts of (trimmed) ISO 8601 text; null where the text has another shape."""
    text = pc.replace_substring_regex(text, r"^(\d{4})/(\d{2})/(\d{2})", r"\1-\2-\3")
    return pc.extract_regex(text, _TIMESTAMP)


def _strptime_exact(text: Values, fmt: str) -> Values:
    """strptime that rejects dates it would roll over (2024-02-30 is not 2024-03-01);
    `text` starts with the `YYYY-MM-DD` date."""
    parsed = pc.strptime(text, fmt, unit="us", error_is_null=True)
    written = pc.utf8_slice_codeunits(text, 0, 10)
    # Casting via date32 formats far faster than strftime.
    return keep(parsed, pc.equal(pc.cast(pc.cast(parsed, pa.date32()), pa.string()), written))


def _fast(text: Values, pattern: str, kind: pa.DataType) -> Values | None:
    """The fast path: Arrow's own ISO 8601 cast of `text`, taken only when every value
    has a shape (`pattern`) that the cast reads exactly as the general path does. None
    when a value has another shape or is an impossible date (the cast fails then)."""
    if not pc.all(pc.match_substring_regex(text, pattern)).as_py():
        return None
    try:
        return pc.cast(text, kind)
    except pa.ArrowInvalid:
        return None


def parse_date(values: Values) -> Values:
    """The date part of ISO 8601 text, as written (no time-zone conversion)."""
    text = pc.utf8_trim_whitespace(values)
    fast = _fast(text, _ISO_NAIVE, pa.timestamp("us"))
    if fast is not None:
        return pc.cast(pc.floor_temporal(fast, unit="day"), pa.date32())
    day = pc.struct_field(_timestamp_parts(text), "date")
    return pc.cast(_strptime_exact(day, "%Y-%m-%d"), pa.date32())


def parse_timestamp(values: Values) -> Values:
    """ISO 8601 text as timestamp[us, UTC]; text without a zone is taken to be UTC."""
    text = pc.utf8_trim_whitespace(values)
    for pattern, kind in ((_ISO_NAIVE, pa.timestamp("us")), (_ISO_ZONED, _UTC)):
        fast = _fast(text, pattern, kind)
        if fast is not None:
            return pc.cast(fast, _UTC)
    parts = _timestamp_parts(text)
    time = pc.struct_field(parts, "time")
    time = pc.if_else(pc.equal(time, ""), "00:00:00", time)
    time = pc.if_else(
        pc.equal(pc.utf8_length(time), 5), pc.binary_join_element_wise(time, ":00", ""), time
    )
    stamp = pc.binary_join_element_wise(pc.struct_field(parts, "date"), time, " ")
    wall = pc.cast(_strptime_exact(stamp, "%Y-%m-%d %H:%M:%S"), pa.int64())
    fraction = pc.utf8_slice_codeunits(pc.struct_field(parts, "fraction"), 1, 7)
    micros = pc.cast(pc.utf8_rpad(fraction, 6, "0"), pa.int64())
    zone = pc.replace_substring(pc.struct_field(parts, "zone"), ":", "")
    zone = pc.utf8_rpad(
        pc.if_else(pc.is_in(zone, value_set=pa.array(["", "Z"])), "+00", zone), 5, "0"
    )
    offset = pc.add(
        pc.multiply(pc.cast(pc.utf8_slice_codeunits(zone, 1, 3), pa.int64()), 60),
        pc.cast(pc.utf8_slice_codeunits(zone, 3, 5), pa.int64()),
    )
    offset = pc.if_else(pc.starts_with(zone, "-"), pc.negate(offset), offset)
    utc = pc.subtract(pc.add(wall, micros), pc.multiply(offset, _MICROS_PER_MINUTE))
    return pc.cast(utc, _UTC)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def parse_json(values: Values) -> Values:
    """JSON text kept as text when it parses. Arrow has no JSON-text kernel, so each
    distinct value goes through `json.loads` once: the one per-value loop of typecast."""
    distinct = pc.unique(values).drop_null()
    valid = distinct.filter(pa.array([_is_json(v) for v in distinct.to_pylist()], pa.bool_()))
    return keep(values, pc.is_in(values, value_set=valid))
