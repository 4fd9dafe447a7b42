"""The flatten step: explode an array column into rows, or expand an object into columns.

The column is an Arrow list/struct (PostgreSQL arrays, composite values) or JSON text
(json/jsonb arrive as text). JSON text is parsed value by value in Python: there is no
Arrow kernel for it, and flattening JSON is a rare path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.config import FlattenTransform
from summit_etl.transform.base import Step, column
from summit_etl.transform.casting import is_text_type
from summit_etl.transform.errors import TransformError

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_$]")


def _is_json_text(kind: pa.DataType) -> bool:
    # An all-NULL batch may come typed `null` (e.g. built without a schema): no JSON.
    return is_text_type(kind) or pa.types.is_null(kind)


def _parse(texts: list[str | None], field: str, shape: type[list] | type[dict]) -> list[Any]:
    parsed: list[Any] = []
    for text in texts:
        if text is None:
            parsed.append(None)
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise TransformError(
                f"column {field!r} holds {text[:80]!r}, which is not JSON"
            ) from exc
        if value is not None and not isinstance(value, shape):
            what = "array" if shape is list else "object"
            raise TransformError(
                f"column {field!r} holds {text[:80]!r}, which is not a JSON {what}"
            )
        parsed.append(value)
    return parsed


def _to_arrow(values: list[Any]) -> pa.Array:
    """JSON values as one Arrow array. Nested objects and arrays stay JSON text, and
    scalars of mixed kinds (1 and "a") all become text, so that any input converts."""
    values = [json.dumps(v) if isinstance(v, dict | list) else v for v in values]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(
            [v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string()
        )


class FlattenStep(Step):
    def __init__(self, spec: FlattenTransform) -> None:
        self._field = spec.field
        self._mode = spec.mode
        # Keys expanded from JSON so far, with their types: a batch that lacks a key
        # still gets its column (all null), so batches keep one schema where possible.
        self._seen: dict[str, pa.DataType] = {}

    def process(self, batch: pa.Table) -> pa.Table:
        values = column(batch, self._field, "flatten field")
        if self._mode == "explode":
            return self._explode(batch, values)
        return self._expand(batch, values)

    def _explode(self, batch: pa.Table, values: pa.ChunkedArray) -> pa.Table:
        """One row per element, other columns repeated. A NULL or empty array keeps its
        row with a NULL element (like Spark's explode_outer), so no row vanishes."""
        if _is_json_text(values.type):
            lists = self._json_lists(values)
        elif pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            lists = values.combine_chunks()
        else:
            raise TransformError(
                f"explode needs an array or JSON-array column; {self._field!r} is {values.type}"
            )
        empty = pc.fill_null(pc.equal(pc.list_value_length(lists), 0), True)
        lists = pc.if_else(empty, pa.scalar([None], lists.type), lists)
        rows = batch.take(pc.list_parent_indices(lists))
        elements = pc.list_flatten(lists)
        index = batch.column_names.index(self._field)
        return rows.set_column(index, pa.field(self._field, elements.type), elements)

    def _json_lists(self, values: pa.ChunkedArray) -> pa.Array:
        parsed = _parse(values.to_pylist(), self._field, list)
        lengths = np.array([0 if v is None else len(v) for v in parsed], dtype=np.int32)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        elements = _to_arrow([item for v in parsed if v for item in v])
        mask = pa.array([v is None for v in parsed], pa.bool_())
        return pa.ListArray.from_arrays(offsets, elements, mask=mask)

    def _expand(self, batch: pa.Table, values: pa.ChunkedArray) -> pa.Table:
        """Object keys become `<field>_<key>` columns where the field was; characters
        that cannot be in a column name become '_'."""
        if pa.types.is_struct(values.type):
            keys = [values.type.field(i).name for i in range(values.type.num_fields)]
            columns = [pc.struct_field(values, [i]) for i in range(len(keys))]
        elif _is_json_text(values.type):
            keys, columns = self._json_columns(values)
        else:
            raise TransformError(
                f"expand needs a struct or JSON-object column; {self._field!r} is {values.type}"
            )
        names = [f"{self._field}_{_NOT_IDENTIFIER.sub('_', key)}" for key in keys]
        others = [name for name in batch.column_names if name != self._field]
        clashes = sorted({n for n in names if n in others or names.count(n) > 1})
        if clashes:
            raise TransformError(
                f"expanding {self._field!r} would create duplicate column(s) {', '.join(clashes)}"
            )
        index = batch.column_names.index(self._field)
        result = batch.remove_column(index)
        for offset, (name, array) in enumerate(zip(names, columns, strict=True)):
            result = result.add_column(index + offset, pa.field(name, array.type), array)
        return result

    def _json_columns(self, values: pa.ChunkedArray) -> tuple[list[str], list[pa.Array]]:
        objects = _parse(values.to_pylist(), self._field, dict)
        for obj in objects:
            for key in obj or ():
                self._seen.setdefault(key, pa.null())
        columns = []
        for key, kind in self._seen.items():
            array = _to_arrow([None if obj is None else obj.get(key) for obj in objects])
            if pa.types.is_null(array.type) and not pa.types.is_null(kind):
                array = array.cast(kind)
            elif pa.types.is_null(kind):
                self._seen[key] = array.type
            columns.append(array)
        return list(self._seen), columns
