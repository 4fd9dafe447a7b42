"""Arrow batches as they come out of PostgreSQL, made plain for transforms and loaders.

The ADBC driver reads COPY BINARY into Arrow and marks types Arrow lacks with extension
types: `numeric` as an opaque string, `json`/`jsonb` as `arrow.json`, `uuid` as 16
bytes. Transforms and writers want plain types, so numeric becomes decimal128 where its
declared precision fits, and JSON and UUIDs become their text; each field keeps the
PostgreSQL type in its metadata so that a target created from it gets the same type.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PG_TYPE = b"POSTGRESQL:type"
PG_TYPMOD = b"POSTGRESQL:typmod"
# JSON set by the extractor: the source column's own type, see extract/columns.py.
SOURCE_COLUMN = b"SUMMIT:column"
_MAX_DECIMAL128_PRECISION = 38


class TypeTravelError(ValueError):
    """A value cannot travel exactly in the Arrow type its column is read as."""

    def __init__(self, column: str, pg_type: str, reason: str) -> None:
        self.column = column
        self.pg_type = pg_type
        super().__init__(
            f"column {column!r} (source type {pg_type}) holds a value that cannot travel "
            f"exactly as a typed Arrow value: {reason}"
        )


def numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    """(precision, scale) of a numeric(p, s) typmod; None for an unconstrained numeric."""
    if typmod < 4:
        return None
    packed = typmod - 4
    # The scale is 11 bits, signed since PostgreSQL 15 (numeric(5,-2) rounds to hundreds).
    return (packed >> 16) & 0xFFFF, ((packed & 0x7FF) ^ 0x400) - 0x400


def _plain(field: pa.Field, column: pa.ChunkedArray | pa.Array) -> tuple[pa.Field, pa.Array]:
    if _has_extension_values(field.type):
        return _plain_lists(field, column)
    if not isinstance(field.type, pa.BaseExtensionType):
        return field, column
    storage = (
        column.storage
        if isinstance(column, pa.ExtensionArray)
        else pa.chunked_array(
            [chunk.storage for chunk in column.chunks], type=field.type.storage_type
        )
    )
    metadata = field.metadata or {}
    if metadata.get(PG_TYPE) == b"uuid" and pa.types.is_fixed_size_binary(storage.type):
        text = uuid_text(storage)
        return field.with_type(text.type), text
    if metadata.get(PG_TYPE) == b"numeric":
        decimal = decimal_type(int(metadata.get(PG_TYPMOD, b"-1")))
        if decimal is not None:
            return field.with_type(decimal), decimal_from_text(field.name, storage, decimal)
        # The driver's text of a numeric is PostgreSQL's but for the special values.
        for driver, server in _NUMERIC_SPECIALS:
            storage = pc.replace_substring_regex(storage, driver, server)
    return field.with_type(storage.type), storage


_NUMERIC_SPECIALS = (("^nan$", "NaN"), ("^inf$", "Infinity"), ("^-inf$", "-Infinity"))


def _has_extension_values(data_type: pa.DataType) -> bool:
    """An array (Arrow list) of an extension type: uuid[], json[], jsonb[], numeric[]."""
    return pa.types.is_list(data_type) and isinstance(data_type.value_type, pa.BaseExtensionType)


def _plain_lists(field: pa.Field, column: pa.ChunkedArray | pa.Array) -> tuple[pa.Field, pa.Array]:
    """A list column (an array a flatten step explodes) with its values made plain."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    value_field, plain = field.type.value_field, []
    for chunk in chunks:
        value_field, values = _plain(field.type.value_field, chunk.values)
        plain.append(pa.ListArray.from_arrays(chunk.offsets, values, mask=chunk.is_null()))
    list_type = pa.list_(value_field)
    return field.with_type(list_type), pa.chunked_array(plain, type=list_type)


def empty_table(schema: pa.Schema) -> pa.Table:
    """`schema.empty_table()`, which pyarrow cannot make for a list of an extension type."""
    return pa.Table.from_arrays([_empty(f.type) for f in schema], schema=schema)


def _empty(data_type: pa.DataType) -> pa.Array:
    if isinstance(data_type, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(data_type, _empty(data_type.storage_type))
    if pa.types.is_list(data_type):
        offsets = pa.array([0], pa.int32())
        return pa.ListArray.from_arrays(offsets, _empty(data_type.value_type), type=data_type)
    return pa.array([], type=data_type)


def decimal_type(typmod: int) -> pa.Decimal128Type | None:
    """The decimal128 a numeric(p, s) travels typed in; None when it travels as its text:
    unconstrained, p > 38, or a scale below 0 or above p (PostgreSQL 15 allows both)."""
    shape = numeric_precision_scale(typmod)
    if shape is None or not 0 <= shape[1] <= shape[0] <= _MAX_DECIMAL128_PRECISION:
        return None
    return pa.decimal128(*shape)


def decimal_from_text(
    name: str, text: pa.ChunkedArray | pa.Array, decimal: pa.Decimal128Type
) -> pa.ChunkedArray | pa.Array:
    """PostgreSQL's text of numeric(p, s) values as `decimal` (exact: the server already
    rounded them to scale s); NaN, which decimal128 cannot hold, fails naming the column."""
    try:
        return text.cast(decimal)
    except pa.ArrowInvalid as exc:
        raise TypeTravelError(name, "numeric", str(exc)) from exc


_HEX = np.array(list("0123456789abcdef"))
_DASHES_AFTER = (8, 12, 16, 20)  # hex digits before each '-' of the canonical form


def uuid_text(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """16-byte UUIDs as canonical text, vectorised (rules and transforms match on text)."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    raw = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    raw = raw[array.offset * 16 : (array.offset + len(array)) * 16].reshape(-1, 16)
    digits = np.empty((len(array), 32), dtype="<U1")
    digits[:, 0::2], digits[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 15]
    parts = np.split(digits, _DASHES_AFTER, axis=1)
    dash = np.full((len(array), 1), "-", dtype="<U1")
    joined = np.concatenate([p for part in parts for p in (part, dash)][:-1], axis=1)
    text = np.ascontiguousarray(joined).view("<U36").ravel()
    return pa.array(text, pa.string(), mask=array.is_null().to_numpy(zero_copy_only=False))


# The driver shifts PostgreSQL's ±infinity (the extreme int64 / int32) by the epoch
# difference and overflows: anything below PostgreSQL's first day (4713 BC) is one.
_FIRST_MICROS = -210_866_803_200_000_000
_FIRST_DAY = -2_440_588


def _elements(field: pa.Field, column: pa.ChunkedArray) -> tuple[pa.DataType, pa.ChunkedArray]:
    """The column's values: an array column's (a flatten step's list) are its elements."""
    if pa.types.is_list(field.type):
        return field.type.value_type, pc.list_flatten(column)
    return field.type, column


def _reject_infinity(field: pa.Field, column: pa.ChunkedArray) -> None:
    value_type, values = _elements(field, column)
    if pa.types.is_timestamp(value_type):
        first, storage = _FIRST_MICROS, pa.int64()
    elif pa.types.is_date32(value_type):
        first, storage = _FIRST_DAY, pa.int32()
    else:
        return
    lowest = pc.min(values.cast(storage)).as_py()
    if lowest is not None and lowest < first:
        pg_type = (field.metadata or {}).get(PG_TYPE, b"date/time").decode()
        raise TypeTravelError(
            field.name,
            pg_type,
            "±infinity has no Arrow date or timestamp (the column is read typed because a "
            "transformation, quality rule or watermark uses it)",
        )


_DAY_IN = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def reject_end_of_day(table: pa.Table) -> None:
    """A time column read typed holding PostgreSQL's 24:00 (one day past midnight, which
    no Arrow time holds) fails naming its column, as ±infinity does in `plain_table`."""
    for f, column in zip(table.schema, table.columns, strict=True):
        value_type, values = _elements(f, column)
        if not pa.types.is_time(value_type):
            continue
        storage = pa.int32() if pa.types.is_time32(value_type) else pa.int64()
        latest = pc.max(values.cast(storage)).as_py()
        if latest is not None and latest >= _DAY_IN[value_type.unit]:
            pg_type = (f.metadata or {}).get(PG_TYPE, b"time").decode()
            raise TypeTravelError(
                f.name,
                pg_type,
                "24:00 has no Arrow time (the column is read typed because a "
                "transformation, quality rule or watermark uses it)",
            )


def plain_table(data: pa.Table | pa.RecordBatch) -> pa.Table:
    """The batch with extension types replaced by plain Arrow types (metadata kept);
    a ±infinity date or timestamp, which Arrow cannot hold, fails naming its column."""
    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    for f, column in zip(table.schema, table.columns, strict=True):
        _reject_infinity(f, column)
    if not any(
        isinstance(f.type, pa.BaseExtensionType) or _has_extension_values(f.type)
        for f in table.schema
    ):
        return table
    fields, columns = zip(
        *(_plain(f, c) for f, c in zip(table.schema, table.columns, strict=True)), strict=True
    )
    return pa.Table.from_arrays(list(columns), schema=pa.schema(list(fields)))
