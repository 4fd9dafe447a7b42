"""Column statistics computed batch by batch: rows, nulls, distinct values, min and max."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.store.quarantine import json_value

# Distinct values are counted exactly up to this many per column; past it the count
# is reported as a lower bound, so memory stays bounded on wide unique columns.
DISTINCT_LIMIT = 100_000


class ColumnStatistics:
    """Nulls, min and max of every column; distinct counts of `distinct_columns` only
    (the columns the rules look at), since counting distinct values costs per value."""

    def __init__(self, distinct_columns: set[str]) -> None:
        self.distinct_columns = distinct_columns
        self.total = 0
        self.nulls: dict[str, int] = {}
        # The distinct values seen so far, kept as Arrow arrays: merging them stays in C++.
        self.distinct: dict[str, pa.Array] = {}
        self.saturated: set[str] = set()
        self.minimum: dict[str, Any] = {}
        self.maximum: dict[str, Any] = {}

    def observe(self, batch: pa.Table) -> None:
        self.total += batch.num_rows
        for name in batch.column_names:
            column = batch[name]
            self.nulls[name] = self.nulls.get(name, 0) + column.null_count
            if pa.types.is_nested(column.type) or pa.types.is_binary(column.type):
                continue
            if name in self.distinct_columns and name not in self.saturated:
                self._count_distinct(name, column)
            try:
                bounds = pc.min_max(column)
            except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
                continue
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if low is not None and (name not in self.minimum or low < self.minimum[name]):
                self.minimum[name] = low
            if high is not None and (name not in self.maximum or high > self.maximum[name]):
                self.maximum[name] = high

    def _count_distinct(self, name: str, column: pa.ChunkedArray) -> None:
        try:
            values = pc.unique(column).drop_null()
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return
        seen = self.distinct.get(name)
        if seen is not None and len(seen):
            values = pc.unique(pa.chunked_array([seen, values.cast(seen.type)]))
        if len(values) > DISTINCT_LIMIT:
            self.saturated.add(name)
            self.distinct.pop(name, None)
        else:
            self.distinct[name] = values

    def as_dict(self) -> dict[str, Any]:
        distinct: dict[str, int | str] = {name: len(v) for name, v in self.distinct.items()}
        distinct.update({name: f">{DISTINCT_LIMIT}" for name in self.saturated})
        return {
            "totalRecords": self.total,
            "nullCounts": self.nulls,
            "distinctCounts": distinct,
            "minValues": {k: json_value(v) for k, v in self.minimum.items()},
            "maxValues": {k: json_value(v) for k, v in self.maximum.items()},
        }
