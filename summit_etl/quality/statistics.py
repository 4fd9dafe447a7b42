"""Column statistics computed batch by batch: rows, nulls, distinct values, min and max."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

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
        self.distinct: dict[str, set[Any]] = {}
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
                seen = self.distinct.setdefault(name, set())
                seen.update(pc.unique(column).to_pylist())
                if len(seen) > DISTINCT_LIMIT:
                    self.saturated.add(name)
                    self.distinct[name] = set()
            try:
                bounds = pc.min_max(column)
            except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
                continue
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if low is not None and (name not in self.minimum or low < self.minimum[name]):
                self.minimum[name] = low
            if high is not None and (name not in self.maximum or high > self.maximum[name]):
                self.maximum[name] = high

    def as_dict(self) -> dict[str, Any]:
        distinct = {
            name: (f">{DISTINCT_LIMIT}" if name in self.saturated else len(values - {None}))
            for name, values in self.distinct.items()
        }
        for name in self.saturated:
            distinct[name] = f">{DISTINCT_LIMIT}"
        return {
            "totalRecords": self.total,
            "nullCounts": self.nulls,
            "distinctCounts": distinct,
            "minValues": {k: _plain(v) for k, v in self.minimum.items()},
            "maxValues": {k: _plain(v) for k, v in self.maximum.items()},
        }


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool) else str(value)
