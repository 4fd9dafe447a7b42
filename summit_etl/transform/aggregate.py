"""The aggregate step: a stream barrier that emits one row per group at the end.

Each batch is reduced to partial aggregates per group right away (avg as a sum and a
count), and partials are merged into the running state with the same group-by, so
memory is proportional to the number of groups, never to the number of rows.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.config import AggregateTransform
from summit_etl.transform.base import Step, column
from summit_etl.transform.errors import TransformError

# function -> [(aggregation of a batch, aggregation that merges those partials)]
_PARTS: dict[str, list[tuple[str, str]]] = {
    "sum": [("sum", "sum")],
    "count": [("count", "sum")],  # count of non-null values, as SQL count(field)
    "min": [("min", "min")],
    "max": [("max", "max")],
    "avg": [("sum", "sum"), ("count", "sum")],
}
# Merging partials of fewer rows than this would regroup the state for little gain.
_MIN_MERGE_ROWS = 50_000
_AVG_MIN_SCALE = 6


def _mean(total: pa.ChunkedArray, count: pa.ChunkedArray) -> pa.ChunkedArray:
    """avg = sum / count: NULL for a group without values, exact for decimals."""
    count = pc.if_else(pc.equal(count, 0), pa.scalar(None, count.type), count)
    if not pa.types.is_decimal(total.type):
        return pc.divide(pc.cast(total, pa.float64()), pc.cast(count, pa.float64()))
    # decimal256 has room for the digits Arrow adds to a quotient's scale.
    scale = max(total.type.scale, _AVG_MIN_SCALE)
    quotient = pc.divide(
        pc.cast(total, pa.decimal256(38, total.type.scale)), pc.cast(count, pa.decimal256(19, 0))
    )
    rounded = pc.round(quotient, ndigits=scale, round_mode="half_towards_infinity")
    return pc.cast(rounded, pa.decimal128(38, scale))


class AggregateStep(Step):
    """Output: the group keys, then one column per aggregated field, named as the field;
    groups in order of first appearance."""

    def __init__(self, spec: AggregateTransform) -> None:
        both = [field for field in spec.aggregations if field in spec.group_by]
        if both:
            raise TransformError(f"{', '.join(both)} cannot be both a group key and aggregated")
        self._keys = list(spec.group_by)
        self._functions = dict(spec.aggregations)
        # Keys and values travel under private names ('#' is never in a configured name),
        # so that Arrow's `<column>_<function>` output names cannot collide.
        self._key_names = [f"#k{i}" for i in range(len(self._keys))]
        self._partials = [
            (f"#v{j}", first, merge)
            for j, function in enumerate(self._functions.values())
            for first, merge in _PARTS[function]
        ]
        self._key_fields: list[pa.Field] = []
        self._state: pa.Table | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def process(self, batch: pa.Table) -> None:
        keys = [column(batch, key, "aggregate groupBy column") for key in self._keys]
        values = [column(batch, field, "aggregated field") for field in self._functions]
        if not self._key_fields:
            self._key_fields = [batch.schema.field(key) for key in self._keys]
        renamed = pa.Table.from_arrays(
            keys + values, names=self._key_names + [f"#v{j}" for j in range(len(values))]
        )
        aggregations = [(name, first) for name, first, _ in self._partials]
        partial = renamed.group_by(self._key_names, use_threads=False).aggregate(aggregations)
        self._pending.append(partial.select(self._key_names + self._partial_names))
        self._pending_rows += partial.num_rows
        if self._pending_rows >= max(self._state_rows, _MIN_MERGE_ROWS):
            self._merge()

    @property
    def _partial_names(self) -> list[str]:
        return [f"{name}_{first}" for name, first, _ in self._partials]

    @property
    def _state_rows(self) -> int:
        return 0 if self._state is None else self._state.num_rows

    def _merge(self) -> None:
        if not self._pending:
            return
        parts = self._pending if self._state is None else [self._state, *self._pending]
        combined = pa.concat_tables(parts, promote_options="permissive")
        merges = [(f"{name}_{first}", merge) for name, first, merge in self._partials]
        merged = combined.group_by(self._key_names, use_threads=False).aggregate(merges)
        merged = merged.select(self._key_names + [f"{name}_{merge}" for name, merge in merges])
        self._state = merged.rename_columns(self._key_names + self._partial_names)
        self._pending, self._pending_rows = [], 0

    def finish(self) -> pa.Table | None:
        self._merge()
        if self._state is None:
            return None
        state = self._state
        columns = [state[name] for name in self._key_names]
        fields = list(self._key_fields)
        for j, (field, function) in enumerate(self._functions.items()):
            if function == "avg":
                values = _mean(state[f"#v{j}_sum"], state[f"#v{j}_count"])
            else:
                values = state[f"#v{j}_{_PARTS[function][0][0]}"]
            columns.append(values)
            fields.append(pa.field(field, values.type))
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))
