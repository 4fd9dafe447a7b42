"""Shape each batch into exactly what the target's COPY BINARY expects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.extract.arrow import PG_TYPE
from summit_etl.load.target import TargetColumn

_JSONB_VERSION = pa.scalar("\x01")


class ConformError(ValueError):
    pass


def staged_type(column: TargetColumn) -> pa.DataType:
    """The Arrow type a column travels in: its COPY type, or text cast by the server."""
    return column.arrow_type or pa.string()


def as_travelled(columns: Sequence[TargetColumn], incoming: pa.Schema) -> list[TargetColumn]:
    """The columns with those whose values arrive as PostgreSQL text (see
    extract/columns.py) staged as text and cast by the server into their real type."""
    travelled = []
    for column in columns:
        arriving = incoming.field(column.name).type if column.name in incoming.names else None
        if (
            arriving is not None
            and pa.types.is_string(arriving)
            and column.arrow_type is not None
            and not pa.types.is_string(column.arrow_type)
            and column.typname not in ("jsonb", "bytea")
        ):
            column = replace(column, arrow_type=None)
        travelled.append(column)
    return travelled


def _conform_column(values: pa.ChunkedArray, column: TargetColumn) -> pa.ChunkedArray:
    if column.typname == "jsonb" and column.arrow_type is not None:
        text = values if pa.types.is_string(values.type) else values.cast(pa.string())
        return pc.binary_join_element_wise(_JSONB_VERSION, text, "").cast(pa.binary())
    return values.cast(staged_type(column))


def schema_for(columns: Sequence[TargetColumn]) -> pa.Schema:
    return pa.schema([pa.field(c.name, staged_type(c)) for c in columns])


def conform(
    batches: Iterable[pa.Table], columns: Sequence[TargetColumn]
) -> Iterator[pa.RecordBatch]:
    """Select the target's columns from each batch and cast them to their COPY types."""
    schema = schema_for(columns)
    for batch in batches:
        arrays = []
        for column in columns:
            try:
                arrays.append(_conform_column(batch[column.name], column))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                field = batch.schema.field(column.name)
                source = (field.metadata or {}).get(PG_TYPE, b"").decode() or "unknown"
                raise ConformError(
                    f"column {column.name!r} (source type {source}, read as {field.type}) "
                    f"cannot be written to the target's {column.sql_type}: {exc}"
                ) from exc
        yield from pa.Table.from_arrays(arrays, schema=schema).to_batches()
