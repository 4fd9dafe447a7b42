"""PostgreSQL column types and the Arrow types that COPY BINARY writes them from."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from summit_etl.extract.arrow import (
    PG_TYPE,
    PG_TYPMOD,
    SOURCE_COLUMN,
    decimal_type,
    numeric_precision_scale,
)

# Target base types the COPY writer (pgpq, load/writer.py) encodes from a plain Arrow type.
_BINARY_WRITABLE: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "bytea": pa.binary(),
    # jsonb's binary form is a version byte then the text: see `jsonb_binary`.
    "jsonb": pa.binary(),
}

# Source types copied as they are when a target is created from a source's schema.
_PORTABLE = {
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "text",
    "varchar",
    "bpchar",
    "bool",
    "date",
    "timestamp",
    "timestamptz",
    "bytea",
    "json",
    "jsonb",
    "uuid",
    "time",
    "interval",
}
# Portable types that arrive in Arrow as their text.
_TEXTUAL = {"json", "jsonb", "uuid", "time", "interval", "varchar", "bpchar", "text"}


def arrow_type_for(typname: str, typmod: int) -> pa.DataType | None:
    """The Arrow type to write a `typname` column from, or None if it must go as text."""
    if typname == "numeric":
        return decimal_type(typmod)
    return _BINARY_WRITABLE.get(typname)


def _from_arrow(dtype: pa.DataType) -> str:
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_int8(dtype) or pa.types.is_int16(dtype) or pa.types.is_uint8(dtype):
        return "smallint"
    if pa.types.is_int32(dtype) or pa.types.is_uint16(dtype):
        return "integer"
    if pa.types.is_integer(dtype):
        return "bigint"
    if pa.types.is_float32(dtype):
        return "real"
    if pa.types.is_floating(dtype):
        return "double precision"
    if pa.types.is_decimal(dtype):
        return f"numeric({dtype.precision},{dtype.scale})"
    if pa.types.is_timestamp(dtype):
        return "timestamptz" if dtype.tz else "timestamp"
    if pa.types.is_date(dtype):
        return "date"
    if pa.types.is_time(dtype):
        return "time"
    if pa.types.is_duration(dtype):
        return "interval"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return "bytea"
    if pa.types.is_nested(dtype):
        return "jsonb"
    return "text"


@dataclass(frozen=True)
class ColumnDdl:
    sql_type: str
    not_null: bool = False
    # (schema, quoted name, CREATE statement) of user-defined types the column needs
    defines: tuple[tuple[str, str, str], ...] = ()


def column_ddl(field: pa.Field) -> ColumnDdl:
    """The column for a target created from `field`: the source column's own declaration
    (modifiers, NOT NULL, user-defined type) while the field still holds what was read from
    it, else a type derived from the field."""
    raw = (field.metadata or {}).get(SOURCE_COLUMN)
    if raw is not None:
        source = json.loads(raw)
        if source["arrow"] == str(field.type):
            return ColumnDdl(
                source["sql_type"],
                source["not_null"],
                tuple((schema, name, made) for schema, name, made in source["defines"]),
            )
    return ColumnDdl(ddl_type(field))


def ddl_type(field: pa.Field) -> str:
    """The column type for a target created from `field` without its source declaration:
    the source's type while the field still holds that kind of data, else one derived from
    the Arrow type."""
    metadata = field.metadata or {}
    typname = metadata.get(PG_TYPE, b"").decode()
    if typname == "numeric" and (pa.types.is_decimal(field.type) or pa.types.is_string(field.type)):
        shape = numeric_precision_scale(int(metadata.get(PG_TYPMOD, b"-1")))
        return f"numeric({shape[0]},{shape[1]})" if shape else "numeric"
    if typname in _PORTABLE:
        if arrow_type_for(typname, -1) == field.type:
            return typname
        if typname in _TEXTUAL and pa.types.is_string(field.type):
            return typname
    return _from_arrow(field.type)
